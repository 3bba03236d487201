//! Latchkey: an OAuth 2.0 / OpenID Connect provider. See docs/architecture.md for the map.

pub mod accounts;
pub mod admin;
pub mod audit;
pub mod authn;
pub mod config;
pub mod domain;
pub mod endpoints;
pub mod http;
pub mod keys;
pub mod mail;
pub mod metrics;
pub mod oauth;
pub mod oidc;
pub mod outbox;
pub mod secret;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod web;
