//! `record` (work in progress).
