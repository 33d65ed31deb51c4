//! All dialogs of an endpoint, keyed by (Call-ID, local tag, remote tag), for routing in-dialog
//! requests and responses.

use std::collections::HashMap;

use rsip::Request;

use super::state::{Dialog, InDialogRequest};
use super::error::DialogError;
use super::id::DialogId;

#[derive(Debug, Default)]
pub struct Dialogs {
    map: HashMap<DialogId, Dialog>,
}

impl Dialogs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a dialog; returns the previous one with the same id.
    pub fn insert(&mut self, dialog: Dialog) -> Option<Dialog> {
        self.map.insert(dialog.id().clone(), dialog)
    }

    pub fn get(&self, id: &DialogId) -> Option<&Dialog> {
        self.map.get(id)
    }

    pub fn get_mut(&mut self, id: &DialogId) -> Option<&mut Dialog> {
        self.map.get_mut(id)
    }

    pub fn remove(&mut self, id: &DialogId) -> Option<Dialog> {
        self.map.remove(id)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Dialog> {
        self.map.values()
    }

    /// Routes a request with a To tag to its dialog and validates it (§12.2.2). An unknown
    /// dialog is [`DialogError::UnknownDialog`] (answer 481); a request without a To tag is not
    /// in-dialog and is also `UnknownDialog` here (the caller checks the tag first).
    pub fn handle_request(&mut self, req: &Request) -> Result<(DialogId, InDialogRequest), DialogError> {
        let id = DialogId::for_incoming_request(req).ok_or(DialogError::UnknownDialog)?;
        let dialog = self.map.get_mut(&id).ok_or(DialogError::UnknownDialog)?;
        let kind = dialog.handle_request(req)?;
        Ok((id, kind))
    }
}
