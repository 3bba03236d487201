//! Admin operations: one service layer behind the CLI, `latchkey apply` and the admin API
//! (issue 13), so the three cannot disagree. Every write records an audit event naming its
//! actor ([`actor`]).

pub mod access;
pub mod actor;
pub mod apply;
pub mod clients;
pub mod keys;
pub mod users;
pub mod views;
