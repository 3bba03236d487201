//! Passwords: argon2id (RFC 9106; OWASP's m=19 MiB, t=2, p=1 by default), hashed off the async
//! runtime behind a semaphore so a sign-in flood can't stall other endpoints (design rule 10).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version, ARGON2ID_IDENT};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

/// Longer inputs are refused before hashing: a multi-megabyte "password" must not cost a hash.
pub const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Clone, Debug)]
pub struct PasswordSettings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    pub min_length: usize,
    /// Lowest zxcvbn score (0–4) of a new password.
    pub min_score: u8,
    /// Hashes running at once; more wait their turn.
    pub max_concurrent: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must be at least {0} characters long")]
    TooShort(usize),
    #[error("the password must be at most {MAX_PASSWORD_BYTES} bytes long")]
    TooLong,
    /// zxcvbn's judgement, in words a person can act on.
    #[error("the password is too easy to guess{}", weak_reason(.0))]
    TooWeak(Vec<String>),
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

/// The result of checking a password.
#[derive(Debug, PartialEq, Eq)]
pub struct Verification {
    pub valid: bool,
    /// The stored hash used other parameters than today's settings: store a fresh hash.
    pub needs_rehash: bool,
}

pub struct PasswordHasher {
    params: Params,
    min_length: usize,
    min_score: u8,
    permits: Arc<Semaphore>,
    /// argon2's working memory (19 MiB at the default cost), one buffer per permit at most:
    /// taken by a hash, given back after. Memory follows `max_concurrent`, not the number of
    /// threads tokio's blocking pool happened to run hashes on (issue 14: per-thread buffers
    /// took the peak to 100 MB), and a flood of sign-ins never faults 19 MiB of fresh pages per
    /// hash. Allocated on the first sign-in, never at start: an idle server holds none.
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
    /// argon2 verifications computed so far: shows that an unknown user's check really runs (issue 10
    /// item 6) without timing anything, and is the basis for a hashing metric.
    verifications: Arc<AtomicU64>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher").field("params", &self.params).finish()
    }
}

fn weak_reason(advice: &[String]) -> String {
    if advice.is_empty() {
        String::new()
    } else {
        format!(": {}", advice.join(" "))
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

/// Length of the stored hash output and of new salts (RFC 9106 §3.1 recommends 16-byte salts).
const OUTPUT_LEN: usize = 32;
const SALT_LEN: usize = 16;

/// The raw argon2id output for `password` and `salt` with `params`, into `out`, in `memory`
/// (resized when the parameters need another size: a stored hash of older parameters).
fn raw_hash(
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
    memory: &mut Vec<Block>,
) -> Result<(), PasswordError> {
    if memory.len() != params.block_count() {
        // Reserved fallibly: a cost larger than the machine can hold answers an error to this
        // sign-in instead of aborting the process (no hash is computed at start to find out).
        *memory = Vec::new();
        memory
            .try_reserve_exact(params.block_count())
            .map_err(|e| PasswordError::Hashing(format!("argon2 working memory of {} KiB: {e}", params.m_cost())))?;
        memory.resize(params.block_count(), Block::default());
    }
    argon2(params)
        .hash_password_into_with_memory(password, salt, out, memory.as_mut_slice())
        .map_err(|e| PasswordError::Hashing(e.to_string()))
}

/// A PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) for a new password.
fn hash_with(params: &Params, password: &[u8], memory: &mut Vec<Block>) -> Result<String, PasswordError> {
    let fail = |e: &dyn std::fmt::Display| PasswordError::Hashing(e.to_string());
    let mut salt = [0u8; SALT_LEN];
    OsRng.fill_bytes(&mut salt);
    let mut out = [0u8; OUTPUT_LEN];
    raw_hash(params, password, &salt, &mut out, memory)?;
    let salt_string = SaltString::encode_b64(&salt).map_err(|e| fail(&e))?;
    let phc = PasswordHash {
        algorithm: ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| fail(&e))?,
        salt: Some(salt_string.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| fail(&e))?),
    };
    Ok(phc.to_string())
}

/// Checks `password` against a PHC string, with the parameters the string records.
fn verify_with(stored: &PasswordHash<'_>, password: &[u8], memory: &mut Vec<Block>) -> bool {
    let (Ok(params), Some(salt), Some(expected)) = (Params::try_from(stored), stored.salt, stored.hash) else {
        return false;
    };
    if stored.algorithm != ARGON2ID_IDENT {
        return false;
    }
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else { return false };
    let mut out = vec![0u8; expected.len()];
    raw_hash(&params, password, salt, &mut out, memory).is_ok() && bool::from(out.as_slice().ct_eq(expected.as_bytes()))
}

impl PasswordHasher {
    pub fn new(settings: &PasswordSettings) -> Result<Self, PasswordError> {
        let params = Params::new(settings.memory_kib, settings.iterations, settings.parallelism, None)
            .map_err(|e| PasswordError::Hashing(format!("argon2 parameters: {e}")))?;
        Ok(Self {
            params,
            min_length: settings.min_length,
            min_score: settings.min_score,
            permits: Arc::new(Semaphore::new(settings.max_concurrent.max(1))),
            memory: Arc::new(Mutex::new(Vec::new())),
            verifications: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The rules for a new password (NIST SP 800-63B §5.1.1.2, shared/security.md): a minimum
    /// length in characters, not bytes, so Unicode passwords are judged fairly; no composition
    /// rules; nothing truncated; and not easily guessed — zxcvbn scores it against its
    /// frequency lists (common and breached passwords, names, words, keyboard patterns) and
    /// against `user_inputs` (the user's email and name).
    pub fn check_policy(&self, password: &str, user_inputs: &[&str]) -> Result<(), PasswordError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(PasswordError::TooLong);
        }
        if password.chars().count() < self.min_length {
            return Err(PasswordError::TooShort(self.min_length));
        }
        // The user's own email and name count as guessable words, whole and in parts
        // ("jane.doe@example.com" → "jane.doe", "jane", "doe", "example").
        let mut words: Vec<&str> = Vec::new();
        for input in user_inputs {
            words.push(input);
            words.extend(input.split('@').next());
            words.extend(input.split(|c: char| !c.is_alphanumeric()).filter(|w| w.chars().count() >= 3));
        }
        let entropy = zxcvbn::zxcvbn(password, &words);
        if u8::from(entropy.score()) < self.min_score {
            let mut advice = Vec::new();
            if let Some(feedback) = entropy.feedback() {
                if let Some(warning) = feedback.warning() {
                    advice.push(format!("{}.", warning.to_string().trim_end_matches('.')));
                }
                advice.extend(feedback.suggestions().iter().map(ToString::to_string));
            }
            if advice.is_empty() {
                advice.push("Use a longer phrase of several uncommon words.".to_string());
            }
            return Err(PasswordError::TooWeak(advice));
        }
        Ok(())
    }

    /// Hashes a password. New passwords go through [`Self::check_policy`] first; this refuses
    /// only oversized input, so a rehash of an old password always works.
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(PasswordError::TooLong);
        }
        let params = self.params.clone();
        let password = zeroize::Zeroizing::new(password.as_bytes().to_vec());
        self.blocking(move |memory| hash_with(&params, &password, memory)).await?
    }

    /// Checks `password` against `stored`; with `None` (no such user) it answers invalid after
    /// the same argon2id computation a real check costs (today's parameters, a fresh salt), so
    /// that an unknown email takes the time of a wrong password (shared/security.md). Nothing
    /// is hashed at start for that: no stored dummy hash to verify against.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<Verification, PasswordError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Ok(Verification { valid: false, needs_rehash: false });
        }
        let stored = stored.map(str::to_string);
        let params = self.params.clone();
        let password = zeroize::Zeroizing::new(password.as_bytes().to_vec());
        let verifications = self.verifications.clone();
        self.blocking(move |memory| {
            let Some(stored) = stored else {
                let mut salt = [0u8; SALT_LEN];
                OsRng.fill_bytes(&mut salt);
                let mut out = [0u8; OUTPUT_LEN];
                // The output is thrown away: nobody's hash is compared, the time is spent. Counted
                // only when argon2 really ran, so the count proves the work (issue 10 item 6).
                if raw_hash(&params, &password, &salt, &mut out, memory).is_ok() {
                    std::hint::black_box(out);
                    verifications.fetch_add(1, Ordering::Relaxed);
                }
                return Verification { valid: false, needs_rehash: false };
            };
            let Ok(parsed) = PasswordHash::new(&stored) else {
                return Verification { valid: false, needs_rehash: false };
            };
            let valid = verify_with(&parsed, &password, memory);
            verifications.fetch_add(1, Ordering::Relaxed);
            // Compare the costs only: parameters read back from a PHC string also carry the
            // output length, which ours leave unset, so comparing whole `Params` would say
            // "rehash" after every sign-in.
            let needs_rehash = valid
                && Params::try_from(&parsed)
                    .map(|p| {
                        (p.m_cost(), p.t_cost(), p.p_cost()) != (params.m_cost(), params.t_cost(), params.p_cost())
                    })
                    .unwrap_or(true);
            Verification { valid, needs_rehash }
        })
        .await
    }

    /// How many argon2 verifications this hasher has computed (dummy ones included).
    pub fn verifications_computed(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Runs `work` on the blocking pool once a permit is free, with a working-memory buffer of
    /// the pool (or a new one): at most `max_concurrent` buffers ever exist, since each is held
    /// only under a permit.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let mut timer = crate::metrics::HashTimer::start();
        let _permit = self.permits.acquire().await.map_err(|e| PasswordError::Hashing(e.to_string()))?;
        timer.running();
        let mut memory = self.memory.lock().pop().unwrap_or_default();
        let (result, memory) = tokio::task::spawn_blocking(move || {
            let result = work(&mut memory);
            (result, memory)
        })
        .await
        .map_err(|e| PasswordError::Hashing(e.to_string()))?;
        self.memory.lock().push(memory);
        Ok(result)
    }

    /// Working-memory buffers allocated so far (each `memory_kib`): never more than
    /// `max_concurrent`.
    pub fn memory_buffers(&self) -> usize {
        self.memory.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hasher with one iteration of `memory_kib` and `max_concurrent` slots.
    fn with_cost(memory_kib: u32, max_concurrent: usize) -> PasswordHasher {
        PasswordHasher::new(&PasswordSettings {
            memory_kib,
            iterations: 1,
            parallelism: 1,
            min_length: 8,
            min_score: 3,
            max_concurrent,
        })
        .unwrap()
    }

    fn cheap() -> PasswordHasher {
        with_cost(1024, 2)
    }

    #[tokio::test]
    async fn hash_and_verify_unicode_without_truncation() {
        let h = cheap();
        let long = "ünïcødé pässwörd ".repeat(40);
        let stored = h.hash(&long).await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(h.verify(&long, Some(&stored)).await.unwrap().valid);
        assert!(!h.verify(&long[..long.len() - 1], Some(&stored)).await.unwrap().valid);
    }

    #[tokio::test]
    async fn hashes_are_standard_phc_strings_both_ways() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let h = cheap();
        let params = Params::new(1024, 1, 1, None).unwrap();
        // Ours verifies with the argon2 crate's own verifier…
        let ours = h.hash("correct horse").await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(argon2(&params).verify_password(b"correct horse", &parsed).is_ok());
        // …and a hash made by the argon2 crate's own hasher verifies with ours.
        let salt = SaltString::generate(&mut OsRng);
        let theirs = argon2(&params).hash_password(b"battery staple", &salt).unwrap().to_string();
        assert!(h.verify("battery staple", Some(&theirs)).await.unwrap().valid);
        assert!(!h.verify("battery stapler", Some(&theirs)).await.unwrap().valid);
    }

    #[tokio::test]
    async fn unknown_user_never_verifies() {
        let h = cheap();
        assert!(!h.verify("anything", None).await.unwrap().valid);
        // Not for free: the same argon2 computation as a real check (issue 10 item 6 counts it).
        assert_eq!(h.verifications_computed(), 1);
    }

    /// A memory cost the machine cannot allocate fails the hash with an error, never aborts the
    /// process. Only where the kernel refuses an impossible allocation up front (overcommit
    /// modes 0 and 2, Linux's default); under mode 1 the reservation succeeds and filling it
    /// would summon the OOM killer, so the test does not run there.
    #[tokio::test]
    async fn an_impossible_memory_cost_is_an_error_not_an_abort() {
        let overcommit = std::fs::read_to_string("/proc/sys/vm/overcommit_memory").unwrap_or_default();
        if overcommit.trim() == "1" {
            eprintln!("vm.overcommit_memory = 1: skipped");
            return;
        }
        let huge = with_cost(u32::MAX, 1);
        match huge.hash("correct horse battery").await {
            Err(PasswordError::Hashing(why)) => assert!(why.contains("working memory"), "{why}"),
            other => panic!("expected a hashing error, got {other:?}"),
        }
        assert!(!huge.verify("correct horse battery", None).await.unwrap().valid);
        assert_eq!(huge.verifications_computed(), 0, "no argon2 ran, none is counted");
    }

    /// Issue 14: argon2's working memory follows the permits, not the threads. Twelve hashes at
    /// once behind two permits leave at most two buffers (two if two ever ran at once), and
    /// none exists before the first.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn working_memory_is_one_buffer_per_permit() {
        let h = Arc::new(cheap());
        assert_eq!(h.memory_buffers(), 0, "nothing is allocated before the first hash");
        let stored = h.hash("correct horse").await.unwrap();
        assert_eq!(h.memory_buffers(), 1);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..12 {
            let (h, stored) = (h.clone(), stored.clone());
            tasks.spawn(async move {
                let password = if i % 2 == 0 { "correct horse" } else { "wrong horse" };
                h.verify(password, Some(&stored)).await.unwrap().valid == (i % 2 == 0)
            });
        }
        while let Some(right) = tasks.join_next().await {
            assert!(right.unwrap());
        }
        let buffers = h.memory_buffers();
        assert!((1..=2).contains(&buffers), "max_concurrent is 2, yet {buffers} buffers");
    }

    /// The parts of the user's own email and name count as guessable words, not only the whole:
    /// the two halves of an address's local part, swapped, are a weak password for that user
    /// and a strong one for anybody else (the control).
    #[test]
    fn the_parts_of_the_users_own_email_are_guessable() {
        let h = cheap();
        let password = "wmbtkdxqvzrpl";
        assert!(h.check_policy(password, &[]).is_ok(), "random-looking to a stranger");
        assert!(h.check_policy(password, &["Nobody Else", "other@example.com"]).is_ok());
        assert!(matches!(h.check_policy(password, &["xqvzrpl.wmbtkd@example.com"]), Err(PasswordError::TooWeak(_))));
        assert!(matches!(h.check_policy(password, &["Xqvzrpl Wmbtkd"]), Err(PasswordError::TooWeak(_))));
    }

    #[tokio::test]
    async fn policy_and_rehash() {
        let h = cheap();
        assert!(matches!(h.check_policy("short", &[]), Err(PasswordError::TooShort(8))));
        assert!(matches!(h.check_policy(&"x".repeat(1025), &[]), Err(PasswordError::TooLong)));
        assert!(matches!(h.hash(&"x".repeat(1025)).await, Err(PasswordError::TooLong)));
        // Common, patterned or built from the user's own email: refused with advice.
        for weak in ["password123", "qwertyuiop", "aaaaaaaaaa", "iloveyou2024"] {
            match h.check_policy(weak, &[]) {
                Err(PasswordError::TooWeak(advice)) => assert!(!advice.is_empty(), "{weak}"),
                other => panic!("{weak}: {other:?}"),
            }
        }
        assert!(matches!(
            h.check_policy("jane.doe.1987!", &["jane.doe.1987@example.com"]),
            Err(PasswordError::TooWeak(_))
        ));
        // Long, Unicode and passphrases pass; no composition rules.
        assert!(h.check_policy("correct horse battery staple", &[]).is_ok());
        assert!(h.check_policy("ünïcødé pässwörd ümläut", &[]).is_ok());
        let stronger = with_cost(2048, 1);
        let old = h.hash("correct horse").await.unwrap();
        let same = h.verify("correct horse", Some(&old)).await.unwrap();
        assert_eq!(same, Verification { valid: true, needs_rehash: false }, "same parameters: no rehash");
        let v = stronger.verify("correct horse", Some(&old)).await.unwrap();
        assert_eq!(v, Verification { valid: true, needs_rehash: true });
    }
}
