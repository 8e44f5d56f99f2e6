//! Actor bindings: each Automerge actor id belongs to one user, so no one
//! can write under another's name.

use std::collections::HashMap;

use shared::UserId;
use sqlx::Row;

use super::{ROWS_PER_STATEMENT, Store, StoreError, parse_id};

impl Store {
    /// Binds an Automerge actor id to a user. Binding an id that already
    /// belongs to someone else fails; rebinding to the same user is a no-op.
    pub async fn bind_actor(
        &self,
        actor_hex: &str,
        user: UserId,
        now: i64,
    ) -> Result<bool, StoreError> {
        sqlx::query("INSERT INTO actors (actor_id, user_id, created_at) VALUES ($1, $2, $3) ON CONFLICT (actor_id) DO NOTHING")
            .bind(actor_hex)
            .bind(user.to_string())
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(self.actor_owner(actor_hex).await? == Some(user))
    }

    /// Who each of these actor ids is bound to, for those bound at all.
    pub async fn actor_owners(
        &self,
        actors: &[String],
    ) -> Result<HashMap<String, UserId>, StoreError> {
        let mut owners = HashMap::new();
        for part in actors.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT actor_id, user_id FROM actors WHERE actor_id IN ({})",
                self.backend.placeholder_list(part.len())
            );
            let mut query = sqlx::query(&sql);
            for actor in part {
                query = query.bind(actor.as_str());
            }
            for row in query.fetch_all(&self.pool).await? {
                owners.insert(row.get::<String, _>(0), parse_id(&row.get::<String, _>(1))?);
            }
        }
        Ok(owners)
    }

    pub async fn actor_owner(&self, actor_hex: &str) -> Result<Option<UserId>, StoreError> {
        let row = sqlx::query("SELECT user_id FROM actors WHERE actor_id = $1")
            .bind(actor_hex)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| parse_id(&r.get::<String, _>(0))).transpose()
    }
}
