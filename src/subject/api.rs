//! Subjects over HTTP: the person's own profile in the portal (`GET /v1/me`) and everything
//! held about one person for privacy staff (`GET /v1/admin/subjects/{external_id}`, viewer).
//!
//! Email, birth date and the guardian's email are personal data: only the person (with their
//! subject token) and staff with the viewer role ever see them.

use chrono::{DateTime, NaiveDate, Utc};
use poem_openapi::{
    Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};

use super::{AgeStatus, Subject};
use crate::retention::items::{self, DataItem};
use crate::{
    AppState,
    api_tags::ApiTags,
    auth::{ApiKey, Role, SubjectToken},
    clock,
    consent::{api::ConsentView, ledger},
    error::ApiError,
    request,
};

pub struct SubjectApi {
    state: AppState,
}

impl SubjectApi {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

/// What is known about a person.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct ProfileView {
    external_id: String,
    email: Option<String>,
    locale: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    jurisdiction: Option<String>,
    birth_date: Option<NaiveDate>,
    /// A declared age band, when no birth date is known.
    age_band: Option<String>,
    age_status: AgeStatus,
    /// True when a minor has grown past the age of digital consent: their own confirmation of
    /// their consents now replaces the guardian's.
    may_confirm_own_consent: bool,
    guardian_email: Option<String>,
    guardian_verified_at: Option<DateTime<Utc>>,
    /// Processing is restricted: consent checks answer no.
    restricted: bool,
    /// Absent until the main app or the person first told us anything.
    created_at: Option<DateTime<Utc>>,
}

impl ProfileView {
    fn of(state: &AppState, s: Subject) -> Self {
        let may_confirm_own_consent =
            super::may_confirm_own_consent(&state.config, &s, clock::now().date_naive());
        Self {
            external_id: s.external_id,
            email: s.email,
            locale: s.locale,
            jurisdiction: s.jurisdiction,
            birth_date: s.birth_date,
            age_band: s.age_band,
            age_status: s.age_status,
            may_confirm_own_consent,
            guardian_email: s.guardian_email,
            guardian_verified_at: s.guardian_verified_at,
            restricted: s.restricted,
            created_at: Some(s.created_at),
        }
    }

    /// A person the main app has not told us about yet: nothing is stored for a mere look.
    fn unknown(external_id: String) -> Self {
        Self {
            external_id,
            email: None,
            locale: None,
            jurisdiction: None,
            birth_date: None,
            age_band: None,
            age_status: AgeStatus::Unknown,
            may_confirm_own_consent: false,
            guardian_email: None,
            guardian_verified_at: None,
            restricted: false,
            created_at: None,
        }
    }
}

/// An item the main app registered with `data.recorded`.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct DataItemView {
    category: String,
    item_ref: String,
    created_at: DateTime<Utc>,
    clock_event: Option<String>,
    clock_started_at: Option<DateTime<Utc>>,
    purge_after: Option<DateTime<Utc>>,
    erased_at: Option<DateTime<Utc>>,
    /// Held items are never purged.
    legal_hold: bool,
    /// When the person was told of the coming purge.
    noticed_at: Option<DateTime<Utc>>,
    /// When the main app acknowledged the purge.
    purged_at: Option<DateTime<Utc>>,
}

impl From<DataItem> for DataItemView {
    fn from(i: DataItem) -> Self {
        Self {
            category: i.category,
            item_ref: i.external_ref,
            created_at: i.created_at,
            clock_event: i.clock_event,
            clock_started_at: i.clock_started_at,
            purge_after: i.purge_after,
            erased_at: i.erased_at,
            legal_hold: i.legal_hold,
            noticed_at: i.noticed_at,
            purged_at: i.purged_at,
        }
    }
}

/// Everything held about one person.
#[derive(Object)]
struct SubjectRecord {
    profile: ProfileView,
    consents: Vec<ConsentView>,
    requests: Vec<request::api::RequestView>,
    /// The first page of the person's data items, oldest first.
    data_items: Vec<DataItemView>,
    /// How many data items the person has.
    data_items_total: u64,
    /// The cursor of the next page, for `GET /v1/admin/subjects/{external_id}/items`.
    data_items_next_cursor: Option<String>,
}

/// One page of a person's data items.
#[derive(Object)]
struct DataItemPage {
    items: Vec<DataItemView>,
    /// Pass as `cursor` for the next page; absent on the last.
    next_cursor: Option<String>,
}

/// Items on a page unless the caller asks for fewer.
const ITEMS_PAGE: u64 = 100;

fn default_items_page() -> u64 {
    ITEMS_PAGE
}

#[OpenApi]
impl SubjectApi {
    /// My profile
    ///
    /// What the service knows about the person holding the token, including their age status
    /// and whether they may now confirm their own consents.
    #[oai(path = "/v1/me", method = "get", tag = "ApiTags::Portal")]
    async fn me(&self, auth: SubjectToken) -> Result<Json<ProfileView>, ApiError> {
        let external_id = auth.0.0;
        Ok(Json(
            match super::find(self.state.db.conn(), &external_id).await? {
                Some(s) => ProfileView::of(&self.state, s),
                None => ProfileView::unknown(external_id),
            },
        ))
    }

    /// Everything held about a person
    ///
    /// Profile and age status, current consents, data-subject requests and registered data
    /// items.
    #[oai(
        path = "/v1/admin/subjects/:external_id",
        method = "get",
        tag = "ApiTags::Admin"
    )]
    async fn admin_subject(
        &self,
        auth: ApiKey,
        #[oai(validator(min_length = 1, max_length = 255))] external_id: Path<String>,
    ) -> Result<Json<SubjectRecord>, ApiError> {
        auth.0.require(Role::Viewer)?;
        let conn = self.state.db.conn();
        let subject = super::find(conn, &external_id.0)
            .await?
            .ok_or_else(|| ApiError::not_found("no subject with this external id"))?;
        let consents = ledger::current(conn, &subject.id).await?;
        let requests = request::of_subject(conn, &subject.id).await?;
        let (items, next) = items::page_of_subject(conn, &subject.id, None, ITEMS_PAGE).await?;
        let total = items::count_of_subject(conn, &subject.id).await?;
        Ok(Json(SubjectRecord {
            profile: ProfileView::of(&self.state, subject),
            consents: consents.into_iter().map(Into::into).collect(),
            requests: requests.into_iter().map(Into::into).collect(),
            data_items: items.into_iter().map(Into::into).collect(),
            data_items_total: total,
            data_items_next_cursor: next,
        }))
    }

    /// A person's data items, page by page
    ///
    /// Oldest first; `cursor` is the previous page's `next_cursor`.
    #[oai(
        path = "/v1/admin/subjects/:external_id/items",
        method = "get",
        tag = "ApiTags::Admin"
    )]
    async fn admin_subject_items(
        &self,
        auth: ApiKey,
        #[oai(validator(min_length = 1, max_length = 255))] external_id: Path<String>,
        #[oai(validator(max_length = 36))] cursor: Query<Option<String>>,
        #[oai(
            default = "default_items_page",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        limit: Query<u64>,
    ) -> Result<Json<DataItemPage>, ApiError> {
        auth.0.require(Role::Viewer)?;
        let conn = self.state.db.conn();
        let subject = super::find(conn, &external_id.0)
            .await?
            .ok_or_else(|| ApiError::not_found("no subject with this external id"))?;
        let (items, next_cursor) =
            items::page_of_subject(conn, &subject.id, cursor.0.as_deref(), limit.0).await?;
        Ok(Json(DataItemPage {
            items: items.into_iter().map(Into::into).collect(),
            next_cursor,
        }))
    }
}
