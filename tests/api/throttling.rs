//! Brute-force defence and password policy: per-account lockout (atomic, across parallel
//! requests), equal answers, progressive delay, per-IP 429s (issue 4).

use crate::helpers::*;
