//! `profile` (work in progress).
