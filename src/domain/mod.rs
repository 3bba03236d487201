//! Validated types with no I/O. Constructing one of these is the validation: code that holds a
//! `RedirectUri` or a `ScopeSet` never has to check it again.

mod client;
mod origin;
mod redirect_uri;
mod scope;
mod signing_alg;

pub use client::{is_plausible_client_id, AuthMethod, Client, ClientKind, GrantType, NewClient, ValidatedClient};
pub use origin::{parse_allowed_origin, redirect_origin};
pub use redirect_uri::{is_loopback_host, RedirectUri, RedirectUriError};
pub use scope::{has_admin_scope, is_admin_scope, ScopeError, ScopeSet, ADMIN_READ_SCOPE, ADMIN_SCOPE};
pub use signing_alg::SigningAlg;
mod key;
pub use key::{KeyRecord, KeyStatus};
pub mod client_keys;
pub use client_keys::MAX_JWKS_BYTES;
mod user;
pub use user::{normalize_email, validate_name, validate_role, ConsentRecord, CreatedVia, TotpFactor, User};
mod email_token;
pub use email_token::{EmailPurpose, EmailToken, OutboxMessage, QueuedMessage};
mod grant;
pub use grant::{CodeRecord, CodeRedemption, Grant, LiveRefreshToken, RefreshRotation, SessionSummary, Successor};
