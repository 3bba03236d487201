//! Hosted pages (minijinja), one file per page, and what they share: templates, responses,
//! the session and CSRF.

pub mod account;
pub mod assets;
pub mod consent;
pub mod email_change;
pub mod home;
pub mod invitation;
pub mod login;
pub mod logout;
pub mod mfa;
pub mod pages;
pub mod register;
pub mod reset;
pub mod session;
pub mod templates;
