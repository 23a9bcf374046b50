//! `pool` (work in progress).
