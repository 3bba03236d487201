//! Audit trail: an event for each security action, and `latchkey audit` (issue 4).

use crate::helpers::*;
