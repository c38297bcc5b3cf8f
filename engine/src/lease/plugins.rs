//! The plugin registry: one live plugin (a connection pool) per connection,
//! built from the connection's stored configuration and rebuilt when it changes.

use std::sync::Arc;

use super::LeaseError;
use crate::Engine;
use crate::auth::keys::connection_context;
use crate::event::ConnectionWritten;
use crate::plugin::DatabasePlugin;
use crate::plugin::postgres::{PasswordAuthentication, PostgresPlugin, PostgresSettings};
use crate::text::template;

/// Live plugins by `(mount, connection)`, with the configuration each was built from.
pub(crate) type PluginRegistry =
    std::collections::HashMap<crate::state::MountKey, (ConnectionWritten, Arc<dyn DatabasePlugin>)>;

impl Engine {
    /// The plugin for a connection, built once and rebuilt when its configuration
    /// changes (a new password after `rotate-root`, a new URL, `reset`).
    pub(crate) fn plugin_for(&self, connection: &ConnectionWritten) -> Result<Arc<dyn DatabasePlugin>, LeaseError> {
        let key = (connection.mount.clone(), connection.name.clone());
        let mut plugins = self.lifecycle.plugins.lock().expect("plugin registry poisoned");
        if let Some((config, plugin)) = plugins.get(&key)
            && config == connection
        {
            return Ok(plugin.clone());
        }
        let plugin = self.build_plugin(connection)?;
        plugins.insert(key, (connection.clone(), plugin.clone()));
        Ok(plugin)
    }

    /// Forgets a connection's plugin, so the next use reconnects (`reset`).
    pub(crate) fn drop_plugin(&self, mount: &str, name: &str) {
        self.lifecycle.plugins.lock().expect("plugin registry poisoned").remove(&(mount.to_string(), name.to_string()));
    }

    pub(crate) fn build_plugin(&self, connection: &ConnectionWritten) -> Result<Arc<dyn DatabasePlugin>, LeaseError> {
        if let Some(factory) = &self.lifecycle.plugin_factory {
            return (factory.0)(connection).map_err(|e| LeaseError::invalid(format!("connection: {e}")));
        }
        let keys = self.keys.as_ref().ok_or(LeaseError::NoMasterKey)?;
        let password = match &connection.password {
            Some(sealed) => {
                let context = connection_context(&connection.mount, &connection.name);
                let bytes = keys.unseal(&context, sealed).map_err(|e| LeaseError::Corrupt(e.to_string()))?;
                String::from_utf8(bytes).map_err(|_| LeaseError::Corrupt("root password is not UTF-8".into()))?
            }
            None => String::new(),
        };
        let url = template::render_connection_url(&connection.connection_url, &connection.username, &password)
            .map_err(|e| LeaseError::invalid(format!("connection_url: {e}")))?;
        let settings = PostgresSettings {
            connection_url: url,
            max_open_connections: connection.max_open_connections,
            max_idle_connections: connection.max_idle_connections,
            max_connection_lifetime_ms: connection.max_connection_lifetime_ms,
            password_authentication: if connection.password_authentication == "scram-sha-256" {
                PasswordAuthentication::ScramSha256
            } else {
                PasswordAuthentication::Password
            },
            scram_iterations: connection.scram_iterations,
            application_name: self.run_tag.0.clone(),
            ..PostgresSettings::default()
        };
        let plugin = PostgresPlugin::new(&settings).map_err(|e| LeaseError::invalid(format!("connection: {e}")))?;
        Ok(Arc::new(plugin))
    }
}
