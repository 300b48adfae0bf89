//! Bulk requests against the binary: what its log says while eight writers race. The
//! answers themselves are checked in process (`quick::bulk`).

use crate::quick::bulk::mixed_bulk_requests_from_eight_threads;
use crate::support::*;

#[test]
fn eight_threads_of_mixed_bulk_requests_leave_no_lock_error_in_the_log() {
    if skip_heavy() {
        return;
    }
    let srv = Server::start();
    mixed_bulk_requests_from_eight_threads(&srv);
    assert!(
        !srv.stderr().contains("database is locked"),
        "{}",
        srv.stderr()
    );
}
