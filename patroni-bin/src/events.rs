//! What an agent tells the program that embeds it, as it happens: each decision and each change
//! of its database's role, so service discovery or alerting need not poll the REST API.

use patroni_core::{ActionKind, MemberRole};

/// One thing the agent did or saw; delivered on [`crate::builder::AgentHandle::events`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AgentEvent {
    /// A cycle's decision, after it ran: Patroni's status line, the actions and who was found
    /// ineligible for a failover, and why.
    Decision {
        /// The status line, as the log shows it.
        message: String,
        /// The actions, in order.
        actions: Vec<ActionKind>,
        /// Members the policy ruled out this cycle, with the reason.
        ineligible: Vec<(String, String)>,
    },
    /// The local database's role changed (as `/patroni` reports it).
    RoleChanged {
        /// The role before.
        from: MemberRole,
        /// The role now.
        to: MemberRole,
    },
}
