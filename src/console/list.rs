//! The callback manager's list page from its sources: the route renders it
//! with the server's state, and the console benchmark with a book of its own,
//! through this one function.

use maud::Markup;

use super::charts::{self, History};
use super::error::ConsoleError;
use super::pages::{self, Frame, ListParams, Tiles};
use super::TrunkInfo;
use crate::agents::AgentInfo;
use crate::clock::Millis;
use crate::config::Config;
use crate::scheduler::book::{Book, ListFilter};
use crate::scheduler::model::Status;

/// Rows per page of the list.
pub const PAGE_ROWS: usize = 50;

/// What the list page is drawn from.
pub struct Sources<'a> {
    pub book: &'a dyn Book,
    pub cfg: &'a Config,
    pub agents: &'a [AgentInfo],
    pub trunks: &'a [TrunkInfo],
    pub history: &'a History,
    pub now: Millis,
}

/// The filter a list page shows.
pub fn filter_of(p: &ListParams) -> ListFilter {
    ListFilter {
        status: if p.tab == "all" { None } else { p.tab.parse::<Status>().ok() },
        queue: (!p.queue.is_empty()).then(|| p.queue.clone()),
        owner: (!p.owner.is_empty()).then(|| p.owner.clone()),
        phone: (!p.phone.is_empty()).then(|| p.phone.clone()),
        ..ListFilter::default()
    }
}

/// `/console`: one page of [`PAGE_ROWS`] rows matching `p`, sorted by due
/// time, with the tiles and charts.
pub async fn page(src: &Sources<'_>, f: &Frame<'_>, p: &ListParams) -> Result<Markup, ConsoleError> {
    let page = src.book.list(&filter_of(p), PAGE_ROWS, p.cursor.as_deref()).await?;
    let mut rows = page.items;
    rows.sort_by_key(|c| (c.due_at, c.id));
    let st = src.book.stats(None).await?;
    let tiles = Tiles::new(&st, src.agents, src.trunks, src.book.waiting_for_agent());
    let charts = maud::html! { (charts::per_hour_chart(src.history, src.now)) (charts::delay_chart(src.history, src.now)) };
    let queues: Vec<String> = src.cfg.queues.iter().map(|q| q.name.clone()).collect();
    Ok(pages::console(f, &tiles, &st, charts, &queues, p, &rows, page.next_cursor.as_deref()))
}
