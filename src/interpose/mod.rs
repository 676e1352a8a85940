//! Interposition: the libpcp and libc definitions the exports stand in
//! front of, the `select` hook, and the facts about the program the library
//! is loaded into that change what it may take over.

pub(crate) mod next;
pub(crate) mod openssl;
pub(crate) mod program;
pub(crate) mod select;
