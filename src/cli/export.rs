//! `postd export`: every post as one JSON line, from one read snapshot, to stdout or to a
//! file that appears complete or not at all.

use super::rate::{counted, RateMeter};
use crate::config::ExportArgs;
use crate::files::PrivateDir;
use crate::store::{ExportScope, Store};
use std::io::{self, BufWriter, Write};

/// Output buffer: large writes, few system calls (a post line is ~600 bytes).
const OUTPUT_BUFFER: usize = 256 * 1024;

pub fn run(args: ExportArgs) -> Result<(), String> {
    let store = super::open_existing(&args.db)?;
    let scope = if args.trash {
        ExportScope::WithTrash
    } else {
        ExportScope::Active
    };
    let mut meter = RateMeter::new("exporting", "posts");
    let Some(dest) = &args.output else {
        // stdout is the data: nothing else is printed there.
        let mut out = BufWriter::with_capacity(OUTPUT_BUFFER, io::stdout().lock());
        write_posts(&store, scope, &mut out, &mut meter)?;
        out.flush().map_err(writing)?;
        meter.finish();
        return Ok(());
    };
    // Written in a private directory beside the destination and renamed into place, like
    // a backup: a symbolic link at `dest` is replaced, never followed, and a reader of
    // `dest` sees the old file or the whole new one.
    let dir = PrivateDir::beside(dest)?;
    let (partial, file) = dir.create_file("export.ndjson").map_err(writing)?;
    let mut out = BufWriter::with_capacity(OUTPUT_BUFFER, file);
    let count = write_posts(&store, scope, &mut out, &mut meter)?;
    let file = out.into_inner().map_err(|e| writing(e.into_error()))?;
    file.sync_all().map_err(writing)?;
    std::fs::rename(&partial, dest)
        .map_err(|e| format!("cannot move the export to {}: {e}", dest.display()))?;
    meter.finish();
    println!(
        "exported {} to {}",
        counted(count, "post", "posts"),
        dest.display()
    );
    Ok(())
}

fn writing(err: io::Error) -> String {
    format!("writing the export failed: {err}")
}

fn write_posts(
    store: &Store,
    scope: ExportScope,
    out: &mut dyn Write,
    meter: &mut RateMeter,
) -> Result<u64, String> {
    let mut done = 0u64;
    store
        .export_posts(scope, &mut |post, total| {
            serde_json::to_writer(&mut *out, post).map_err(io::Error::from)?;
            out.write_all(b"\n")?;
            done += 1;
            meter.show(done, total);
            Ok::<(), io::Error>(())
        })
        .map_err(|e| format!("export failed: {e}"))?
        .map_err(writing)
}
