//! `ram` (work in progress).
