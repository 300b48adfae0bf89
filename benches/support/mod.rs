//! Helpers for the benches: deterministic content, the server and its RSS probes, the
//! `wrk` driver and the report's formatting. The temporary directory, the HTTP client and starting the binary
//! come from the test kit (tests/testkit), shared with the tests.

pub mod bare;
pub mod content;
pub mod report;
pub mod server;
pub mod transfer;
pub mod wrk;

/// A Markdown table whose columns are padded to their widest cell; the first row is the
/// header.
pub fn markdown_table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String; N]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        out.push_str(&line(row));
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            out.push_str(&format!("|-{}-|\n", rule.join("-|-")));
        }
    }
    out
}
