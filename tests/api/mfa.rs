//! Second factors through the hosted pages: TOTP enrolment, sign-in with a code or a recovery
//! code, replay and skew, the step that cannot be skipped, and MFA policy (issue 4).

use crate::helpers::*;
