//! Non-volatile storage the spool spills into (work in progress).
