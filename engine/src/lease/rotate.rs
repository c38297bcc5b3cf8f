//! Root rotation: the intent carries both passwords (sealed), so whatever
//! happens after the SQL, the password that works is found and logged.

use super::{LeaseError, RotatePlan};
use crate::Engine;
use crate::event::{ConnectionWritten, Event, RotateRootCompleted, RotateRootFailed, RotateRootStarted};

impl Engine {
    /// Runs a rotation plan: intent, `ALTER ROLE`, then the password that logs in.
    /// Unlike the lease operations its outcome has its own append, before the
    /// request's: the connection's pool must be rebuilt from the password that
    /// works only once the state holds it, and no lease claim is involved.
    pub(crate) async fn run_rotate_root(&self, plan: RotatePlan) -> Result<(), LeaseError> {
        let plugin = self.plugin_for(&plan.connection)?;
        self.append(vec![plan.started.clone().into()]).await.map_err(LeaseError::io)?;
        let rotated = plugin
            .rotate_root(
                &plan.connection.username,
                plan.new_password.expose(),
                &plan.connection.root_rotation_statements,
            )
            .await;
        let outcome = self.settle_rotation(&plan.connection, &plan.started).await?;
        match (rotated, outcome) {
            (Ok(()), Event::RotateRootCompleted(_)) => Ok(()),
            (Err(e), _) => Err(e.into()),
            (Ok(()), _) => Err(LeaseError::Database(
                "the rotation statements ran but neither the old nor the new root password logs in".into(),
            )),
        }
    }

    /// Finds which of a rotation's passwords works (new first) and logs it.
    pub(crate) async fn settle_rotation(
        &self,
        connection: &ConnectionWritten,
        started: &RotateRootStarted,
    ) -> Result<Event, LeaseError> {
        let mut outcome = Event::RotateRootFailed(RotateRootFailed {
            mount: started.mount.clone(),
            name: started.name.clone(),
            error: "neither the old nor the new root password logs in".into(),
        });
        for candidate in [&started.new_password, &started.old_password] {
            let trial = ConnectionWritten { password: Some(candidate.clone()), ..connection.clone() };
            let works = match self.build_plugin(&trial) {
                Ok(plugin) => plugin.verify().await.is_ok(),
                Err(_) => false,
            };
            if works {
                outcome = Event::RotateRootCompleted(RotateRootCompleted {
                    mount: started.mount.clone(),
                    name: started.name.clone(),
                    password: candidate.clone(),
                });
                break;
            }
        }
        self.append(vec![outcome.clone()]).await.map_err(LeaseError::io)?;
        // The next use rebuilds the pool from the password that works.
        self.drop_plugin(&started.mount, &started.name);
        Ok(outcome)
    }
}
