//! postd's command line, as the `postd` binary runs it, for the console's tests to start.

fn main() {
    let status = postd::cli::run(std::env::args_os().skip(1));
    // Another thread may still be writing a batch that holds our last lines.
    log::logger().flush();
    std::process::exit(status);
}
