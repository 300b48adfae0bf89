//! Bulk operations (issue 3).
