//! `bulkhead serve [token …]`: the command line of the service (`bulkhead-server` runs it).

use clap::{Args, Subcommand};

/// `bulkhead serve [token …]`; the configuration file is the global `--config FILE`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(subcommand)]
    command: Option<ServeCommand>,
}

#[derive(Debug, Subcommand)]
enum ServeCommand {
    /// Manage API tokens (stored hashed; a secret is shown once, at creation).
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token bound to one tenant and one role; prints the secret once.
    Create {
        /// The tenant (a `[[tenants]]` name of the configuration).
        #[arg(long)]
        tenant: String,
        /// reader (read results), operator (also trigger scans and manage ownership),
        /// admin (also manage the tenant's tokens).
        #[arg(long)]
        role: String,
        /// A name to recognise it by in listings.
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// Revoke a token by id.
    Revoke {
        /// The id `token create` or `token list` printed.
        id: i64,
    },
    /// List tokens (never their secrets).
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
    },
}

impl ServeArgs {
    /// What the service is asked to do.
    pub(crate) fn action(self) -> bulkhead_server::Action {
        use bulkhead_server::Action;
        match self.command {
            None => Action::Serve,
            Some(ServeCommand::Token(TokenCommand::Create { tenant, role, name })) => {
                Action::CreateToken { tenant, role, name }
            }
            Some(ServeCommand::Token(TokenCommand::Revoke { id })) => Action::RevokeToken { id },
            Some(ServeCommand::Token(TokenCommand::List { tenant })) => {
                Action::ListTokens { tenant }
            }
        }
    }
}
