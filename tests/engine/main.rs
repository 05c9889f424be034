//! Behavioural tests of the engine on the embedded profile: real SQLite files and real
//! content files in a temporary data dir, a manual clock, no sleeping.

mod helpers;
mod lifecycle;
mod storage;
mod sweeper;
