//! `spool` (work in progress).
