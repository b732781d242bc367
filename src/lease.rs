//! Leases on scheduled jobs, so that replicas sharing one database run each job once per
//! schedule: every replica's scheduler fires, the first to take the lease runs the job, the
//! others skip it. A lease is taken with one conditional statement (insert, or update when it
//! has expired), which is atomic on SQLite and on PostgreSQL alike. It is not released after
//! the run: it simply expires, so a replica whose clock fires a little later does not run the
//! job a second time.

use std::sync::OnceLock;

use chrono::TimeDelta;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, prelude::Expr,
    sea_query::OnConflict,
};

use crate::{clock, db::Db};

/// The `job_leases` table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "job_leases")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        /// The process holding it.
        pub holder: String,
        pub expires_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// This process's name as a lease holder: random, fixed for the process's life.
pub fn holder() -> &'static str {
    static HOLDER: OnceLock<String> = OnceLock::new();
    HOLDER.get_or_init(|| uuid::Uuid::new_v4().to_string())
}

/// Takes the lease `name` for `ttl` unless another holder has it. Returns whether this holder
/// now has it.
pub async fn acquire(
    db: &Db,
    name: &str,
    holder: &str,
    ttl: TimeDelta,
) -> Result<bool, sea_orm::DbErr> {
    let now = clock::now();
    let inserted = entity::Entity::insert(entity::ActiveModel {
        name: Set(name.to_string()),
        holder: Set(holder.to_string()),
        expires_at: Set(now + ttl),
    })
    .on_conflict(
        OnConflict::column(entity::Column::Name)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db.conn())
    .await?;
    if inserted == 1 {
        return Ok(true);
    }
    let taken = entity::Entity::update_many()
        .col_expr(entity::Column::Holder, Expr::value(holder))
        .col_expr(entity::Column::ExpiresAt, Expr::value(now + ttl))
        .filter(entity::Column::Name.eq(name))
        .filter(
            Condition::any()
                .add(entity::Column::ExpiresAt.lte(now))
                .add(entity::Column::Holder.eq(holder)),
        )
        .exec(db.conn())
        .await?;
    Ok(taken.rows_affected == 1)
}

/// The leases someone holds at `now`, for monitoring.
pub async fn held(
    conn: &impl sea_orm::ConnectionTrait,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<entity::Model>, sea_orm::DbErr> {
    entity::Entity::find()
        .filter(entity::Column::ExpiresAt.gt(now))
        .all(conn)
        .await
}

/// Gives up a lease this holder has, so that the next taker need not wait for it to expire.
pub async fn release(db: &Db, name: &str, holder: &str) -> Result<(), sea_orm::DbErr> {
    entity::Entity::update_many()
        .col_expr(entity::Column::ExpiresAt, Expr::value(clock::now()))
        .filter(entity::Column::Name.eq(name))
        .filter(entity::Column::Holder.eq(holder))
        .exec(db.conn())
        .await?;
    Ok(())
}
