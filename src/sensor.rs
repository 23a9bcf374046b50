//! `sensor` (work in progress).
