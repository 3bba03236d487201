//! `latchkey apply FILE` (issue 13 item 3): declarative configuration. A TOML file declares
//! clients (with stable ids), scope descriptions, roles and users' roles; `plan` compares it
//! with the database and lists what would change, `apply` makes exactly those changes. Applying
//! the same file twice changes nothing; `--prune` also deletes clients, scope descriptions and
//! roles the file no longer declares. Secrets never appear in the file: a client names the
//! environment variable or file that holds its secret.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::clients::{client_json, AdminError};
use crate::domain::{normalize_email, validate_role, ClientKind, NewClient};
use crate::secret::sha256;
use crate::store::{CatalogStore, ClientStore, UserStore};

/// Shortest secret accepted from the environment or a file: as long as the ones Latchkey makes.
const MIN_SECRET_CHARS: usize = 32;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Declared {
    #[serde(default)]
    pub client: Vec<DeclaredClient>,
    #[serde(default)]
    pub scope: Vec<DeclaredScope>,
    #[serde(default)]
    pub role: Vec<DeclaredRole>,
    #[serde(default)]
    pub user: Vec<DeclaredUser>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredClient {
    /// Stable: the client_id apps are configured with.
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub first_party: bool,
    #[serde(default)]
    pub require_mfa: bool,
    #[serde(default)]
    pub introspect: bool,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    pub grant_types: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    pub audience: Option<String>,
    pub id_token_alg: Option<String>,
    pub backchannel_logout_uri: Option<String>,
    #[serde(default)]
    pub backchannel_logout_session_required: bool,
    /// private_key_jwt: a JWKS file (relative to the declaration file) or URL.
    pub jwks_file: Option<PathBuf>,
    pub jwks_uri: Option<String>,
    /// The environment variable that holds the secret…
    pub secret_env: Option<String>,
    /// …or the file (a mounted secret), relative to the declaration file.
    pub secret_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredScope {
    pub name: String,
    /// What the consent page says the app may do.
    pub description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredRole {
    pub name: String,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredUser {
    pub email: String,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// One change the plan makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    CreateClient {
        id: String,
    },
    /// The fields that differ (as `client show` names them), `secret` included.
    UpdateClient {
        id: String,
        fields: Vec<String>,
    },
    DeleteClient {
        id: String,
    },
    SetScope {
        name: String,
        created: bool,
    },
    DeleteScope {
        name: String,
    },
    SetRole {
        name: String,
        created: bool,
    },
    DeleteRole {
        name: String,
    },
    SetUserRoles {
        email: String,
        from: Vec<String>,
        to: Vec<String>,
    },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::CreateClient { id } => write!(f, "+ client {id}"),
            Change::UpdateClient { id, fields } => write!(f, "~ client {id}: {}", fields.join(", ")),
            Change::DeleteClient { id } => write!(f, "- client {id}"),
            Change::SetScope { name, created: true } => write!(f, "+ scope {name}"),
            Change::SetScope { name, created: false } => write!(f, "~ scope {name}: description"),
            Change::DeleteScope { name } => write!(f, "- scope {name}"),
            Change::SetRole { name, created: true } => write!(f, "+ role {name}"),
            Change::SetRole { name, created: false } => write!(f, "~ role {name}: description"),
            Change::DeleteRole { name } => write!(f, "- role {name}"),
            Change::SetUserRoles { email, from, to } => {
                write!(f, "~ user {email}: roles [{}] -> [{}]", from.join(", "), to.join(", "))
            }
        }
    }
}

/// What applying changes, with everything it needs to write.
pub struct Plan {
    pub changes: Vec<Change>,
    clients: BTreeMap<String, crate::domain::Client>,
    secrets: BTreeMap<String, [u8; 32]>,
    scopes: BTreeMap<String, String>,
    roles: BTreeMap<String, Option<String>>,
    user_roles: BTreeMap<String, (String, Vec<String>)>,
}

/// Parses a declaration file's text.
pub fn parse(text: &str) -> Result<Declared, AdminError> {
    toml::from_str(text).map_err(|e| AdminError::Invalid(format!("the declaration file: {e}")))
}

fn invalid(what: impl Into<String>) -> AdminError {
    AdminError::Invalid(what.into())
}

/// A declared client id: stable, typed into app configuration, so plain.
fn check_client_id(id: &str) -> Result<(), AdminError> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)) {
        return Err(invalid(format!("client id `{id}` must be 1 to 64 letters, digits, `-`, `.` or `_`")));
    }
    Ok(())
}

fn read_secret(
    client: &DeclaredClient,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, AdminError> {
    let secret = match (&client.secret_env, &client.secret_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(format!("client {}: secret_env or secret_file, not both", client.id)))
        }
        (Some(var), None) => Some(
            env(var).ok_or_else(|| invalid(format!("client {}: environment variable {var} is not set", client.id)))?,
        ),
        (None, Some(file)) => {
            let path = base.join(file);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| invalid(format!("client {}: cannot read {}: {e}", client.id, path.display())))?;
            Some(text.trim_end_matches(['\r', '\n']).to_string())
        }
        (None, None) => None,
    };
    if let Some(secret) = &secret {
        if secret.chars().count() < MIN_SECRET_CHARS {
            return Err(invalid(format!(
                "client {}: its secret must be at least {MIN_SECRET_CHARS} characters",
                client.id
            )));
        }
    }
    Ok(secret)
}

/// Compares `declared` with the database. `base` is the declaration file's directory (for
/// relative `secret_file` and `jwks_file`); `env` reads environment variables.
pub async fn plan<S: ClientStore + UserStore + CatalogStore>(
    store: &S,
    declared: Declared,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    prune: bool,
    now: i64,
) -> Result<Plan, AdminError> {
    let mut plan = Plan {
        changes: Vec::new(),
        clients: BTreeMap::new(),
        secrets: BTreeMap::new(),
        scopes: BTreeMap::new(),
        roles: BTreeMap::new(),
        user_roles: BTreeMap::new(),
    };
    // Roles first: clients and users may only name declared roles (when any are declared).
    let mut declared_roles = BTreeSet::new();
    let existing_roles: BTreeMap<String, Option<String>> = store.roles().await?.into_iter().collect();
    for role in &declared.role {
        let name = validate_role(&role.name).map_err(invalid)?;
        if !declared_roles.insert(name.clone()) {
            return Err(invalid(format!("role {name} is declared twice")));
        }
        match existing_roles.get(&name) {
            Some(current) if *current == role.description => {}
            other => plan.changes.push(Change::SetRole { name: name.clone(), created: other.is_none() }),
        }
        plan.roles.insert(name, role.description.clone());
    }
    let check_roles = |owner: &str, roles: &[String]| -> Result<(), AdminError> {
        if declared.role.is_empty() {
            return Ok(());
        }
        match roles.iter().find(|r| !declared_roles.contains(*r)) {
            Some(role) => Err(invalid(format!("{owner}: role {role} is not declared in a [[role]]"))),
            None => Ok(()),
        }
    };

    let existing_scopes: BTreeMap<String, String> = store.scope_descriptions().await?.into_iter().collect();
    for scope in &declared.scope {
        crate::domain::ScopeSet::parse(&scope.name)
            .ok()
            .filter(|s| s.to_vec().len() == 1)
            .ok_or_else(|| invalid(format!("scope `{}` is not one scope token", scope.name)))?;
        let description = scope.description.trim();
        if description.is_empty() || description.chars().count() > 200 || description.chars().any(char::is_control) {
            return Err(invalid(format!(
                "scope {}: the description must be 1 to 200 printable characters",
                scope.name
            )));
        }
        if plan.scopes.insert(scope.name.clone(), description.to_string()).is_some() {
            return Err(invalid(format!("scope {} is declared twice", scope.name)));
        }
        if existing_scopes.get(&scope.name).map(String::as_str) != Some(description) {
            plan.changes.push(Change::SetScope {
                name: scope.name.clone(),
                created: !existing_scopes.contains_key(&scope.name),
            });
        }
    }

    for client in &declared.client {
        check_client_id(&client.id)?;
        check_roles(&format!("client {}", client.id), &client.roles)?;
        if plan.clients.contains_key(&client.id) {
            return Err(invalid(format!("client {} is declared twice", client.id)));
        }
        let jwks = match &client.jwks_file {
            Some(file) => Some(std::fs::read_to_string(base.join(file)).map_err(|e| {
                invalid(format!("client {}: cannot read {}: {e}", client.id, base.join(file).display()))
            })?),
            None => None,
        };
        let registration = NewClient {
            name: client.name.clone(),
            public: client.public,
            first_party: client.first_party,
            require_mfa: client.require_mfa,
            redirect_uris: client.redirect_uris.clone(),
            post_logout_redirect_uris: client.post_logout_redirect_uris.clone(),
            grant_types: client.grant_types.clone(),
            scopes: client.scopes.clone(),
            roles: client.roles.clone(),
            audience: client.audience.clone(),
            id_token_alg: client.id_token_alg.clone(),
            allowed_origins: client.allowed_origins.clone(),
            introspect: client.introspect,
            backchannel_logout_uri: client.backchannel_logout_uri.clone(),
            backchannel_logout_session_required: client.backchannel_logout_session_required,
            jwks,
            jwks_uri: client.jwks_uri.clone(),
        };
        let valid = registration.validate().map_err(|e| invalid(format!("client {}: {e}", client.id)))?;
        let needs_secret = valid.kind == ClientKind::Confidential && !valid.uses_keys();
        let secret = read_secret(client, base, env)?;
        if secret.is_some() && !needs_secret {
            return Err(invalid(format!("client {}: a public or private_key_jwt client has no secret", client.id)));
        }
        let current = store.find_client(&client.id).await?;
        let secret_hash = secret.as_deref().map(sha256);
        match &current {
            None => {
                if needs_secret && secret_hash.is_none() {
                    return Err(invalid(format!(
                        "client {}: a confidential client needs secret_env or secret_file (secrets are never written in the file)",
                        client.id
                    )));
                }
                plan.changes.push(Change::CreateClient { id: client.id.clone() });
                plan.clients.insert(client.id.clone(), valid.into_client(client.id.clone(), secret_hash, now, None));
            }
            Some(current) => {
                let desired =
                    valid.into_client(current.id.clone(), current.secret_hash, current.created_at, current.disabled_at);
                let (before, after) = (client_json(current), client_json(&desired));
                let mut fields: Vec<String> = match (before.as_object(), after.as_object()) {
                    (Some(b), Some(a)) => {
                        a.iter().filter(|(k, v)| b.get(*k) != Some(*v)).map(|(k, _)| k.clone()).collect()
                    }
                    _ => Vec::new(),
                };
                if let Some(hash) = secret_hash {
                    if current.secret_hash != Some(hash) {
                        fields.push("secret".into());
                        plan.secrets.insert(client.id.clone(), hash);
                    }
                }
                if !fields.is_empty() {
                    plan.changes.push(Change::UpdateClient { id: client.id.clone(), fields });
                }
                plan.clients.insert(client.id.clone(), desired);
            }
        }
    }

    for user in &declared.user {
        let email = normalize_email(&user.email).map_err(invalid)?;
        check_roles(&format!("user {email}"), &user.roles)?;
        let mut roles = user.roles.iter().map(|r| validate_role(r)).collect::<Result<Vec<_>, _>>().map_err(invalid)?;
        roles.sort();
        roles.dedup();
        let Some(found) = store.find_user_by_email(&email).await? else {
            return Err(invalid(format!(
                "user {email} does not exist (apply sets roles; create users with `user create` or `user invite`)"
            )));
        };
        if found.roles != roles {
            plan.changes.push(Change::SetUserRoles {
                email: email.clone(),
                from: found.roles.clone(),
                to: roles.clone(),
            });
        }
        plan.user_roles.insert(email, (found.sub, roles));
    }

    if prune {
        for client in store.list_clients().await? {
            if !plan.clients.contains_key(&client.id) {
                plan.changes.push(Change::DeleteClient { id: client.id });
            }
        }
        for scope in existing_scopes.keys().filter(|s| !plan.scopes.contains_key(*s)) {
            plan.changes.push(Change::DeleteScope { name: scope.clone() });
        }
        for role in existing_roles.keys().filter(|r| !plan.roles.contains_key(*r)) {
            plan.changes.push(Change::DeleteRole { name: role.clone() });
        }
    }
    Ok(plan)
}

/// Makes the plan's changes, in order: roles and scopes, clients, users' roles, deletions.
/// Each is its own write; a failure stops there (what is done stays done, and applying the file
/// again finishes the rest).
pub async fn apply<S: ClientStore + UserStore + CatalogStore>(
    store: &S,
    plan: &Plan,
    now: i64,
) -> Result<(), AdminError> {
    for change in &plan.changes {
        match change {
            Change::SetRole { name, .. } => {
                let description = plan.roles.get(name).cloned().flatten();
                store.set_role(name, description.as_deref(), now).await?;
            }
            Change::SetScope { name, .. } => {
                if let Some(description) = plan.scopes.get(name) {
                    store.set_scope_description(name, description, now).await?;
                }
            }
            Change::CreateClient { id } => {
                if let Some(client) = plan.clients.get(id) {
                    store.insert_client(client).await?;
                }
            }
            Change::UpdateClient { id, fields } => {
                if let Some(client) = plan.clients.get(id) {
                    if fields.iter().any(|f| f != "secret") {
                        store.update_client(client, now).await?;
                    }
                }
                if let Some(hash) = plan.secrets.get(id) {
                    store.set_client_secret(id, hash, now).await?;
                }
            }
            Change::SetUserRoles { email, .. } => {
                if let Some((sub, roles)) = plan.user_roles.get(email) {
                    store.set_roles(sub, roles, now).await?;
                }
            }
            Change::DeleteClient { id } => {
                store.delete_client(id, now).await?;
            }
            Change::DeleteScope { name } => store.delete_scope_description(name).await?,
            Change::DeleteRole { name } => store.delete_role(name).await?,
        }
    }
    Ok(())
}
