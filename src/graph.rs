//! Knowledge of Microsoft Graph's calling API shapes.
//!
//! A recorder has to tie together traffic that Graph itself never links
//! explicitly: the bot's API requests, their responses, and the callback
//! notifications that arrive (possibly earlier, later or out of order) for
//! the same call or operation. This module extracts the call and operation
//! ids that make that linking possible, and gives every path a canonical
//! form for matching.
//!
//! Graph spells the same id differently depending on where it appears
//! (`57dab8b1-894c-409a-b240-bd8beae78896` in a `Location` header,
//! `57DAB8B1894C409AB240BD8BEAE78896` in a notification's `resource`), and
//! the same collection under several names (`/communications/calls`,
//! the deprecated `/app/calls`, old beta `/applications/{appId}/calls`).
//! Everything here therefore keeps the id as it appeared *and* a lookup
//! form; stored bytes are never rewritten.
//!
//! Pure functions only: no I/O, and no input can make them panic.

use crate::exchange::{header, Exchange, StoredBody};
use crate::jsonscan::{self, Event, Frame, Str};
use serde::Serialize;
use std::borrow::Cow;
use std::fmt::{self, Write as _};

/// An id as it appeared, and its lookup form.
///
/// `raw` is kept so that anything shown to a user or replayed matches the
/// original traffic; `norm` (see [`normalize_id`]) is what lookups compare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdRef {
    /// The id as written (percent-decoded when it came from a path).
    pub raw: String,
    /// The lookup form produced by [`normalize_id`].
    pub norm: String,
}

/// Lookup form of an id: trim, strip surrounding braces, remove `-`,
/// lowercase.
///
/// Graph writes the same GUID dashed lower-case in `Location` headers and
/// undashed upper-case in notification resources, so ids must compare
/// case-insensitively and ignoring dashes. Returns `None` for ids that carry
/// no identity (`""`, `"null"` in any case, `"{}"`), because Graph has been
/// seen to send null ids and two of them must never match each other.
pub fn normalize_id(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    let unbraced = trimmed
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or(trimmed)
        .trim();
    if unbraced.eq_ignore_ascii_case("null") {
        return None;
    }
    let mut norm = String::with_capacity(unbraced.len());
    for c in unbraced.chars().filter(|&c| c != '-') {
        match c.is_ascii() {
            true => norm.push(c.to_ascii_lowercase()),
            false => norm.extend(c.to_lowercase()),
        }
    }
    (!norm.is_empty()).then_some(norm)
}

/// The call and operation a request, response or notification refers to.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct CallIds {
    /// The call (`calls/{id}`), if one is named.
    pub call: Option<IdRef>,
    /// The commsOperation (`calls/{id}/operations/{op}`), if one is named.
    pub operation: Option<IdRef>,
}

/// Ids named by a Graph path or URL.
///
/// Accepts a path (`/v1.0/communications/calls/{id}/participants/invite`),
/// a path with a query, or an absolute URL such as a `Location` header
/// (`https://graph.microsoft.com/beta/app/calls/{id}/operations/{op}`).
/// Recognises the collections `communications/calls`, `app/calls`,
/// `applications/{appId}/calls` and a bare leading `calls`, after an
/// optional version segment (`v1.0`, `beta`). The segment after `calls` is
/// the call id unless it is an action or a sub-collection name; the segment
/// after `operations` is the operation id. Segments are percent-decoded.
/// Anything that is not a calls path yields an empty [`CallIds`].
#[must_use]
pub fn ids_from_path(path: &str) -> CallIds {
    let segments = path_segments(path);
    calls_rest(&segments).map(ids_from_rest).unwrap_or_default()
}

/// Ids from one API exchange: the request path first, then the response.
///
/// The path alone cannot name what the request creates, and the response
/// is where Graph first reveals it:
/// - a `POST` to the bare calls collection creates a call: its id is the
///   response body's `"id"`, else the call named by `location`;
/// - a request that names a call but no operation may start a
///   commsOperation: its id is the operation named by `location`, else the
///   body's `"id"` when the body also has a `"status"` (which is what tells a
///   commsOperation apart from, say, a participant).
///
/// Ids already named by the path always win. A response with a non-2xx
/// `status` describes no created resource, so only the path is used then;
/// `status: None` (not known) is treated as success.
#[must_use]
pub fn ids_from_exchange(
    method: &str,
    path: &str,
    status: Option<u16>,
    location: Option<&str>,
    response_body: &[u8],
) -> CallIds {
    let segments = path_segments(path);
    let Some(rest) = calls_rest(&segments) else {
        return CallIds::default();
    };
    let mut ids = ids_from_rest(rest);
    if status.is_some_and(|s| !(200..300).contains(&s)) {
        return ids;
    }
    // Bodies are parsed only when they can matter: this runs per request.
    if rest.is_empty() {
        if method.eq_ignore_ascii_case("POST") {
            ids.call = top_fields(response_body)
                .and_then(|b| b.id)
                .or_else(|| location.and_then(|l| ids_from_path(l).call));
        }
    } else if ids.call.is_some() && ids.operation.is_none() {
        ids.operation = location
            .and_then(|l| ids_from_path(l).operation)
            .or_else(|| {
                top_fields(response_body)
                    .filter(|b| b.status_is_string)
                    .and_then(|b| b.id)
            });
    }
    ids
}

/// The call a stored API exchange is about (its path first, then what its response
/// created), in lookup form.
pub(crate) fn api_call(ex: &Exchange<StoredBody>) -> Option<String> {
    let resp = ex.response.as_ref();
    let path = match &ex.request.query {
        Some(q) => format!("{}?{q}", ex.request.path),
        None => ex.request.path.clone(),
    };
    ids_from_exchange(
        &ex.request.method,
        &path,
        resp.map(|r| r.status),
        resp.and_then(|r| header(&r.headers, "location")),
        &resp.map(|r| r.content()).unwrap_or_default(),
    )
    .call
    .map(|id| id.norm)
}

/// Canonical form of a path, for matching and grouping requests.
///
/// Drops the scheme and host, version prefix, query, fragment and empty
/// segments (so a trailing slash), maps `app/calls` and
/// `applications/{x}/calls` to `communications/calls`, strips the
/// `microsoft.graph.` action prefix and lower-cases action and
/// sub-collection names (Graph treats them case-insensitively), and replaces
/// ids by their [`normalize_id`] form. Non-calls paths keep their segments
/// as written. Segments are percent-decoded, then `%`, `/`, `?`, `#` and
/// whitespace/control characters are re-encoded so that distinct paths stay
/// distinct.
///
/// `"/beta/app/calls/57DAB8B1-894C-409A-B240-BD8BEAE78896/microsoft.graph.answer"`
/// becomes `"/communications/calls/57dab8b1894c409ab240bd8beae78896/answer"`.
#[must_use]
pub fn normalize_path(path: &str) -> String {
    let segments = path_segments(path);
    let mut out = String::new();
    match calls_rest(&segments) {
        Some(rest) => {
            out.push_str("/communications/calls");
            for segment in rest {
                let canonical = match classify(segment) {
                    Segment::Name(name) => name,
                    Segment::Id => {
                        normalize_id(segment).unwrap_or_else(|| segment.to_ascii_lowercase())
                    }
                };
                out.push('/');
                push_escaped(&mut out, &canonical);
            }
        }
        None => {
            for segment in &segments {
                out.push('/');
                push_escaped(&mut out, segment);
            }
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// One notification inside a commsNotifications POST body, indexed for
/// queries.
///
/// Text fields are copied as sent (`"Updated"` stays capitalised) because the
/// recorder must show what Graph actually said; only ids get a lookup form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotificationIndex {
    /// Position in the body's `value` array (0 for a legacy single object).
    pub index: usize,
    /// `changeType`, as sent.
    pub change_type: Option<String>,
    /// `resource` (often the deprecated `/app/calls/...` form).
    pub resource: Option<String>,
    /// `resourceUrl` (absent in older payloads).
    pub resource_url: Option<String>,
    /// `resourceData`'s `@odata.type`; for an array (participant roster),
    /// that of its first object element.
    pub odata_type: Option<String>,
    /// From `resourceUrl`, else `resource`, else `resourceData`'s `@odata.id`.
    pub call: Option<IdRef>,
    /// From the same sources as `call`, first one that names an operation.
    pub operation: Option<IdRef>,
    /// `resourceData.state` (a call's state).
    pub state: Option<String>,
    /// `resourceData.status` (an operation's status).
    pub status: Option<String>,
}

/// Why a callback body could not be indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationError {
    /// The body is not JSON (or not UTF-8); carries the parser's message.
    NotJson(String),
    /// The body is JSON but neither `{"value":[...]}` nor a single
    /// notification object.
    NoValueArray,
}

impl fmt::Display for NotificationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotJson(msg) => write!(f, "notification body is not JSON: {msg}"),
            Self::NoValueArray => f.write_str(
                "notification body has no `value` array and is not a single notification",
            ),
        }
    }
}

impl std::error::Error for NotificationError {}

/// Index a callback body: `{"value":[...]}`, with or without the
/// commsNotifications `@odata.type`.
///
/// A single notification object (an object with `changeType` or `resource`
/// and no `value` array, as legacy senders post) is accepted as one entry.
/// Non-object entries are skipped but still count towards `index`, so an
/// index always points back into the stored body.
///
/// # Errors
///
/// [`NotificationError::NotJson`] if the body is not JSON (including
/// non-UTF-8 bytes); [`NotificationError::NoValueArray`] if it is JSON of
/// another shape.
pub fn parse_notifications(body: &[u8]) -> Result<Vec<NotificationIndex>, NotificationError> {
    let mut scan = NotificationScan::default();
    jsonscan::walk(jsonscan::strip_bom(body), |stack, event| {
        scan.visit(stack, event)
    })
    .map_err(|e| NotificationError::NotJson(format!("expected {} at byte {}", e.expected, e.at)))?;
    if !scan.top_is_object {
        return Err(NotificationError::NoValueArray);
    }
    if scan.value_is_array {
        return Ok(scan.entries.iter().map(Entry::index).collect());
    }
    if scan.top_is_notification {
        return Ok(vec![scan.top.index()]);
    }
    Err(NotificationError::NoValueArray)
}

/// Graph action names. Matched case-insensitively because the SDKs and the
/// docs disagree on casing.
const ACTIONS: [&str; 19] = [
    "answer",
    "reject",
    "redirect",
    "transfer",
    "keepAlive",
    "mute",
    "unmute",
    "playPrompt",
    "recordResponse",
    "cancelMediaProcessing",
    "subscribeToTone",
    "sendDtmfTones",
    "updateRecordingStatus",
    "changeScreenSharingRole",
    "invite",
    "addLargeGalleryView",
    "startHoldMusic",
    "stopHoldMusic",
    "logTeleconferenceDeviceQuality",
];

/// Navigation segments under a call that are not ids.
const SUB_COLLECTIONS: [&str; 4] = [
    "participants",
    "operations",
    "audioRoutingGroups",
    "contentSharingSessions",
];

/// The namespace the SDK may qualify actions with.
const ACTION_PREFIX: &str = "microsoft.graph.";

/// What a segment after a calls collection is.
enum Segment {
    /// An action or sub-collection, in canonical (lower-case, unprefixed)
    /// form.
    Name(String),
    /// Anything else: a call, operation, participant, ... id.
    Id,
}

fn classify(segment: &str) -> Segment {
    let prefixed = segment
        .get(..ACTION_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(ACTION_PREFIX));
    let name = if prefixed {
        &segment[ACTION_PREFIX.len()..]
    } else {
        segment
    };
    let known = ACTIONS
        .iter()
        .chain(SUB_COLLECTIONS.iter())
        .any(|k| k.eq_ignore_ascii_case(name));
    // A namespace-qualified segment is an action even when this list does
    // not know it yet: Graph never qualifies ids.
    if known || prefixed {
        Segment::Name(name.to_ascii_lowercase())
    } else {
        Segment::Id
    }
}

fn id_ref(raw: &str) -> Option<IdRef> {
    normalize_id(raw).map(|norm| IdRef {
        raw: raw.to_owned(),
        norm,
    })
}

/// Ids from the segments that follow a calls collection.
fn ids_from_rest(rest: &[Cow<'_, str>]) -> CallIds {
    let id_at = |i: usize| {
        rest.get(i)
            .filter(|s| matches!(classify(s), Segment::Id))
            .and_then(|s| id_ref(s))
    };
    let operation = rest
        .iter()
        .position(|s| s.eq_ignore_ascii_case("operations"))
        .and_then(|i| id_at(i + 1));
    CallIds {
        call: id_at(0),
        operation,
    }
}

/// The segments after the calls collection, or `None` if `segments` (as
/// returned by [`path_segments`]) is not a calls path.
fn calls_rest<'s, 'a>(segments: &'s [Cow<'a, str>]) -> Option<&'s [Cow<'a, str>]> {
    let is = |s: &Cow<'_, str>, name: &str| s.eq_ignore_ascii_case(name);
    match segments {
        [a, b, rest @ ..] if (is(a, "communications") || is(a, "app")) && is(b, "calls") => {
            Some(rest)
        }
        [a, _, c, rest @ ..] if is(a, "applications") && is(c, "calls") => Some(rest),
        [a, rest @ ..] if is(a, "calls") => Some(rest),
        _ => None,
    }
}

/// Percent-decoded, non-empty path segments with scheme, host, query,
/// fragment and a leading version segment removed; borrowed unless percent-encoded.
fn path_segments(path: &str) -> Vec<Cow<'_, str>> {
    let path = path.trim();
    // Only a "://" before any '/', '?' or '#' is a scheme separator; one
    // inside a query (a callback URL, say) is not.
    let path = match path.find("://") {
        Some(i) if !path[..i].contains(['/', '?', '#']) => {
            let after = &path[i + 3..];
            after.find(['/', '?', '#']).map_or("", |j| &after[j..])
        }
        _ => path,
    };
    let path = path.find(['?', '#']).map_or(path, |i| &path[..i]);
    let mut segments: Vec<Cow<'_, str>> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| crate::percent::decode_lossy(s, false))
        .collect();
    if segments.first().is_some_and(|s| is_version(s)) {
        segments.remove(0);
    }
    segments
}

/// `beta`, `v1.0`, `v2`: the API version segments Graph uses.
fn is_version(segment: &str) -> bool {
    if segment.eq_ignore_ascii_case("beta") {
        return true;
    }
    segment.strip_prefix(['v', 'V']).is_some_and(|number| {
        number.starts_with(|c: char| c.is_ascii_digit())
            && number.chars().all(|c| c.is_ascii_digit() || c == '.')
    })
}

/// Append `segment`, re-encoding the characters that would change the
/// path's structure or hide in whitespace.
fn push_escaped(out: &mut String, segment: &str) {
    for c in segment.chars() {
        if matches!(c, '%' | '/' | '?' | '#') || c.is_whitespace() || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                // Writing to a String cannot fail.
                let _ = write!(out, "%{b:02X}");
            }
        } else {
            out.push(c);
        }
    }
}

/// The top-level members of a response body that name what it created.
struct TopFields {
    /// `id`, when it is a string that is an id.
    id: Option<IdRef>,
    /// Whether `status` is a string (a commsOperation has one).
    status_is_string: bool,
}

/// A response body's top-level `id` and `status`, if it is a JSON object. Later
/// duplicates win, as in a parsed object.
fn top_fields(body: &[u8]) -> Option<TopFields> {
    let mut id = None;
    let mut status_is_string = false;
    let mut is_object = false;
    jsonscan::walk(jsonscan::strip_bom(body), |stack, event| {
        match (stack, event) {
            ([], Event::Open(true)) => is_object = true,
            ([top], event) if top.at_key("id") => id = string_of(event),
            ([top], event) if top.at_key("status") => {
                status_is_string = matches!(event, Event::Str(_));
            }
            _ => {}
        }
    })
    .ok()?;
    is_object.then(|| TopFields {
        id: id.and_then(|s| id_ref(&s.text())),
        status_is_string,
    })
}

fn string_of(event: Event<'_>) -> Option<Str<'_>> {
    match event {
        Event::Str(s) => Some(s),
        _ => None,
    }
}

/// One notification's fields as read from the body, borrowed until indexed.
#[derive(Default)]
struct Entry<'a> {
    index: usize,
    change_type: Option<Str<'a>>,
    resource: Option<Str<'a>>,
    resource_url: Option<Str<'a>>,
    data: Data<'a>,
}

/// What `resourceData` says: an object (a call, an operation) or an array (a
/// roster), whose first object element stands for its type and call.
#[derive(Default)]
struct Data<'a> {
    is_object: bool,
    /// In an array: the position of the first object element, once seen.
    representative: Option<usize>,
    odata_type: Option<Str<'a>>,
    odata_id: Option<Str<'a>>,
    state: Option<Str<'a>>,
    status: Option<Str<'a>>,
}

impl<'a> Entry<'a> {
    /// The fields of an entry object, whose members sit at `stack[depth - 1]`.
    fn visit(&mut self, stack: &[Frame<'a>], depth: usize, event: Event<'a>) {
        let Some(member) = stack.get(depth - 1).filter(|f| f.object) else {
            return;
        };
        let Some(key) = member.key else { return };
        if stack.len() == depth {
            match () {
                _ if key.is("changeType") => self.change_type = string_of(event),
                _ if key.is("resource") => self.resource = string_of(event),
                _ if key.is("resourceUrl") => self.resource_url = string_of(event),
                _ if key.is("resourceData") => {
                    if matches!(event, Event::Close) {
                        return;
                    }
                    self.data = Data {
                        is_object: matches!(event, Event::Open(true)),
                        ..Data::default()
                    };
                }
                _ => {}
            }
            return;
        }
        if !key.is("resourceData") {
            return;
        }
        let data = &mut self.data;
        let inner = &stack[depth..];
        match inner {
            // Members of an object resourceData.
            [object] if data.is_object && object.object => {
                let Some(k) = object.key else { return };
                let field = match () {
                    _ if k.is("@odata.type") => &mut data.odata_type,
                    _ if k.is("@odata.id") => &mut data.odata_id,
                    _ if k.is("state") => &mut data.state,
                    _ if k.is("status") => &mut data.status,
                    _ => return,
                };
                *field = string_of(event);
            }
            // An item of an array resourceData: the first object is the representative.
            [array]
                if !data.is_object
                    && !array.object
                    && matches!(event, Event::Open(true))
                    && data.representative.is_none() =>
            {
                data.representative = Some(array.index);
            }
            [array, object] if !array.object && object.object => {
                if data.representative != Some(array.index) {
                    return;
                }
                let Some(k) = object.key else { return };
                let field = match () {
                    _ if k.is("@odata.type") => &mut data.odata_type,
                    _ if k.is("@odata.id") => &mut data.odata_id,
                    _ => return,
                };
                *field = string_of(event);
            }
            _ => {}
        }
    }

    fn index(&self) -> NotificationIndex {
        let text = |s: &Option<Str<'_>>| s.map(|s| s.text().into_owned());
        let resource_url = text(&self.resource_url);
        let resource = text(&self.resource);
        // The first source that names each id; later ones are read only if needed.
        let mut ids = CallIds::default();
        let odata_id = self.data.odata_id.map(|s| s.text());
        for path in [
            resource_url.as_deref(),
            resource.as_deref(),
            odata_id.as_deref(),
        ] {
            if ids.call.is_some() && ids.operation.is_some() {
                break;
            }
            let Some(path) = path else { continue };
            let named = ids_from_path(path);
            ids.call = ids.call.or(named.call);
            ids.operation = ids.operation.or(named.operation);
        }
        let object_only = |s: &Option<Str<'_>>| if self.data.is_object { text(s) } else { None };
        NotificationIndex {
            index: self.index,
            change_type: text(&self.change_type),
            call: ids.call,
            operation: ids.operation,
            resource,
            resource_url,
            odata_type: text(&self.data.odata_type),
            state: object_only(&self.data.state),
            status: object_only(&self.data.status),
        }
    }
}

/// One pass over a callback body: the `value` array's entries, and the top object
/// itself for a legacy single notification. Later duplicate keys win, as in a parsed
/// object.
#[derive(Default)]
struct NotificationScan<'a> {
    top_is_object: bool,
    /// Whether (the last) `value` is an array.
    value_is_array: bool,
    /// Whether the top object has `changeType` or `resource`.
    top_is_notification: bool,
    entries: Vec<Entry<'a>>,
    top: Entry<'a>,
}

impl<'a> NotificationScan<'a> {
    fn visit(&mut self, stack: &[Frame<'a>], event: Event<'a>) {
        let Some(top) = stack.first() else {
            if !matches!(event, Event::Close) {
                self.top_is_object = matches!(event, Event::Open(true));
            }
            return;
        };
        if !top.object {
            return;
        }
        if stack.len() == 1 && !matches!(event, Event::Close) {
            if top.at_key("value") {
                self.value_is_array = matches!(event, Event::Open(false));
                self.entries.clear();
            } else if top.at_key("changeType") || top.at_key("resource") {
                self.top_is_notification = true;
            }
        }
        self.top.visit(stack, 1, event);
        if !top.at_key("value") || !self.value_is_array {
            return;
        }
        match stack {
            [_, array] => {
                if matches!(event, Event::Open(true)) {
                    self.entries.push(Entry {
                        index: array.index,
                        ..Entry::default()
                    });
                }
            }
            [_, array, ..] => {
                if let Some(entry) = self.entries.last_mut().filter(|e| e.index == array.index) {
                    entry.visit(stack, 3, event);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALL_DASHED: &str = "57dab8b1-894c-409a-b240-bd8beae78896";
    const CALL_UPPER: &str = "57DAB8B1894C409AB240BD8BEAE78896";
    const CALL_NORM: &str = "57dab8b1894c409ab240bd8beae78896";
    const OP_NORM: &str = "0fe0623fd62842edb4bd8ac290072cc5";

    /// Seed: "Notification - Incoming".
    const INCOMING: &str = r##"{
      "value": [
        {
          "changeType": "created",
          "resource": "/app/calls/57DAB8B1894C409AB240BD8BEAE78896",
          "resourceData": {
            "@odata.type": "#microsoft.graph.call",
            "@odata.id": "/app/calls/57DAB8B1894C409AB240BD8BEAE78896",
            "@odata.etag": "W/\"5445\"",
            "state": "incoming",
            "direction": "incoming",
            "source": {
              "@odata.type": "#microsoft.graph.participantInfo",
              "identity": {
                "user": {
                  "displayName": "Test User",
                  "language": "en-US",
                  "id": "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"
                }
              }
            },
            "targets": [
              {
                "@odata.type": "#microsoft.graph.participantInfo",
                "identity": {
                  "application": {
                    "displayName": "Test BOT",
                    "language": "en-US",
                    "id": "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"
                  }
                }
              }
            ],
            "requestedModalities": [ "audio", "video" ]
          }
        }
      ]
    }"##;

    /// Seed: "Notification - operation completed".
    const OP_DELETED: &str = r##"{
      "value": [
        {
          "changeType": "deleted",
          "resource": "/app/calls/57DAB8B1894C409AB240BD8BEAE78896/operations/0FE0623FD62842EDB4BD8AC290072CC5",
          "resourceData": {
            "@odata.type": "#microsoft.graph.commsOperation",
            "@odata.id": "/app/calls/57DAB8B1894C409AB240BD8BEAE78896/operations/0FE0623FD62842EDB4BD8AC290072CC5",
            "@odata.etag": "W/\"51\"",
            "clientContext": "d45324c1-fcb5-430a-902c-f20af696537c",
            "status": "completed"
          }
        }
      ]
    }"##;

    /// Seed: "Notification - roster updated with participant added".
    const ROSTER: &str = r##"{
      "value": [
        {
          "changeType": "updated",
          "resource": "/app/calls/57DAB8B1894C409AB240BD8BEAE78896/participants",
          "resourceData": [
            {
              "@odata.type": "#microsoft.graph.participant",
              "@odata.id": "/app/calls/57DAB8B1894C409AB240BD8BEAE78896/participants/8A34A46B3D174ADC8DCEDC4E7D572698",
              "@odata.etag": "W/\"51\"",
              "info": {
                "identity": {
                  "user": {
                    "displayName": "Test User",
                    "id": "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"
                  }
                },
                "region": "westus",
                "languageId": "en-US"
              },
              "mediaStreams": [
                {
                  "mediaType": "audio",
                  "label": "main-audio",
                  "sourceId": "1",
                  "direction": "sendReceive",
                  "serverMuted": false
                }
              ]
            },
            {
              "@odata.type": "#microsoft.graph.participant",
              "@odata.id": "/app/calls/57DAB8B1894C409AB240BD8BEAE78896/participants/123456W77E24E4D85F80597083CB830",
              "@odata.etag": "W/\"55\"",
              "info": {
                "identity": {
                  "application": {
                    "displayName": "Test Bot",
                    "id": "1234A46B-3D17-4ADC-8DCE-DC4E7D556789"
                  }
                },
                "region": "westus",
                "languageId": "en-US"
              },
              "mediaStreams": [
                {
                  "mediaType": "audio",
                  "label": "main-audio",
                  "sourceId": "2",
                  "direction": "sendReceive",
                  "serverMuted": false
                }
              ]
            }
          ]
        }
      ]
    }"##;

    /// Two seed notifications (establishing of the joined call, terminated
    /// of the original P2P call) batched in one POST, as Graph may do, with
    /// the commsNotifications wrapper type and a capitalised changeType.
    const TWO: &str = r##"{
      "@odata.type": "#microsoft.graph.commsNotifications",
      "value": [
        {
          "@odata.type": "#microsoft.graph.commsNotification",
          "changeType": "Updated",
          "resource": "/app/calls/90ED37DCD8E34E119DE330A955DDA06F",
          "resourceUrl": "/communications/calls/90ED37DCD8E34E119DE330A955DDA06F",
          "resourceData": {
            "@odata.type": "#microsoft.graph.call",
            "@odata.id": "/app/calls/90ED37DCD8E34E119DE330A955DDA06F",
            "@odata.etag": "W/\"5445\"",
            "state": "establishing",
            "direction": "outgoing"
          }
        },
        {
          "@odata.type": "#microsoft.graph.commsNotification",
          "changeType": "updated",
          "resource": "/app/calls/57DAB8B1894C409AB240BD8BEAE78896",
          "resourceData": {
            "@odata.type": "#microsoft.graph.call",
            "@odata.id": "/app/calls/57DAB8B1894C409AB240BD8BEAE78896",
            "@odata.etag": "W/\"5445\"",
            "state": "terminated",
            "terminationReason": "AppInitiated"
          }
        }
      ]
    }"##;

    fn id(raw: &str) -> IdRef {
        IdRef {
            raw: raw.to_owned(),
            norm: normalize_id(raw).expect("test id normalises"),
        }
    }

    fn norm(ids: &CallIds) -> (Option<&str>, Option<&str>) {
        (
            ids.call.as_ref().map(|i| i.norm.as_str()),
            ids.operation.as_ref().map(|i| i.norm.as_str()),
        )
    }

    fn parse_one(body: &str) -> NotificationIndex {
        let mut all = parse_notifications(body.as_bytes()).expect("parses");
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0)
    }

    #[test]
    fn normalize_id_makes_both_graph_spellings_equal() {
        assert_eq!(normalize_id(CALL_DASHED).as_deref(), Some(CALL_NORM));
        assert_eq!(normalize_id(CALL_UPPER).as_deref(), Some(CALL_NORM));
        assert_eq!(
            normalize_id(" {57DAB8B1-894C-409A-B240-BD8BEAE78896} ").as_deref(),
            Some(CALL_NORM)
        );
        assert_eq!(normalize_id("id-value").as_deref(), Some("idvalue"));
    }

    #[test]
    fn normalize_id_rejects_empty_and_null() {
        for raw in [
            "", "   ", "null", "NULL", " Null ", "{}", "{null}", "-", "--",
        ] {
            assert_eq!(normalize_id(raw), None, "{raw:?}");
        }
        // Only a matched pair of braces is stripped.
        assert_eq!(normalize_id("{abc").as_deref(), Some("{abc"));
    }

    #[test]
    fn path_with_call_id_and_action() {
        let ids = ids_from_path(&format!(
            "/v1.0/communications/calls/{CALL_DASHED}/participants/invite"
        ));
        assert_eq!(ids.call, Some(id(CALL_DASHED)));
        assert_eq!(ids.operation, None);
    }

    #[test]
    fn location_absolute_url_with_version_names_call_and_operation() {
        let loc = "https://graph.microsoft.com/beta/app/calls/57dab8b1-894c-409a-b240-bd8beae78896/operations/0fe0623f-d628-42ed-b4bd-8ac290072cc5";
        let ids = ids_from_path(loc);
        assert_eq!(norm(&ids), (Some(CALL_NORM), Some(OP_NORM)));
        assert_eq!(ids.call.map(|c| c.raw).as_deref(), Some(CALL_DASHED));
    }

    #[test]
    fn all_collection_spellings_and_versions_are_recognised() {
        for path in [
            format!("/communications/calls/{CALL_UPPER}"),
            format!("/v1.0/communications/calls/{CALL_UPPER}"),
            format!("/beta/app/calls/{CALL_UPPER}"),
            format!("/app/calls/{CALL_UPPER}"),
            format!("/beta/applications/8a34a46b/calls/{CALL_UPPER}"),
            format!("/calls/{CALL_UPPER}"),
            format!("/v1.0/calls/{CALL_UPPER}/"),
            format!("/V1.0/Communications/Calls/{CALL_UPPER}"),
            format!("calls/{CALL_UPPER}"),
            format!("https://graph.microsoft.com/v1.0/communications/calls/{CALL_DASHED}"),
        ] {
            assert_eq!(
                norm(&ids_from_path(&path)),
                (Some(CALL_NORM), None),
                "{path}"
            );
        }
    }

    #[test]
    fn query_and_fragment_are_ignored() {
        let ids = ids_from_path(&format!(
            "/v1.0/communications/calls/{CALL_UPPER}/operations/{OP_NORM}?$select=status&x=a/b#frag"
        ));
        assert_eq!(norm(&ids), (Some(CALL_NORM), Some(OP_NORM)));
        // A URL inside the query is not mistaken for the request's own.
        let ids = ids_from_path("/v1.0/me?next=https://graph.microsoft.com/app/calls/abc");
        assert_eq!(ids, CallIds::default());
    }

    #[test]
    fn non_calls_paths_name_nothing() {
        for path in [
            "/v1.0/me",
            "/",
            "",
            "/v1.0/communications/callRecords/abc",
            "/v1.0/communications/onlineMeetings/abc",
            "/v1.0/users/abc/calls/def",
            "https://graph.microsoft.com",
            "https://cdn.contoso.com/beep.wav",
        ] {
            assert_eq!(ids_from_path(path), CallIds::default(), "{path}");
        }
    }

    #[test]
    fn collection_and_collection_actions_name_no_call() {
        for path in [
            "/v1.0/communications/calls",
            "/v1.0/communications/calls/",
            "/v1.0/communications/calls/logTeleconferenceDeviceQuality",
            "/v1.0/communications/calls/microsoft.graph.logTeleconferenceDeviceQuality",
            "/v1.0/communications/calls/null",
        ] {
            assert_eq!(ids_from_path(path), CallIds::default(), "{path}");
        }
    }

    #[test]
    fn namespace_qualified_actions_are_not_ids() {
        let ids = ids_from_path(&format!(
            "/beta/app/calls/{CALL_UPPER}/microsoft.graph.answer"
        ));
        assert_eq!(norm(&ids), (Some(CALL_NORM), None));
        // Qualified but unknown to us: still an action, never an id.
        let ids = ids_from_path(&format!(
            "/communications/calls/{CALL_UPPER}/operations/Microsoft.Graph.somethingNew"
        ));
        assert_eq!(norm(&ids), (Some(CALL_NORM), None));
    }

    #[test]
    fn percent_encoded_segments_are_decoded() {
        let ids = ids_from_path(
            "/v1.0/communications/%63alls/%7B57dab8b1%2D894c-409a-b240-bd8beae78896%7D/operations/0fe0623f%2dd628-42ed-b4bd-8ac290072cc5",
        );
        assert_eq!(norm(&ids), (Some(CALL_NORM), Some(OP_NORM)));
        assert_eq!(
            ids.call.map(|c| c.raw).as_deref(),
            Some("{57dab8b1-894c-409a-b240-bd8beae78896}")
        );
        // Malformed escapes are kept literally rather than rejected.
        let ids = ids_from_path("/calls/ab%zz%4/operations/%");
        assert_eq!(ids.call.map(|c| c.raw).as_deref(), Some("ab%zz%4"));
        assert_eq!(ids.operation.map(|c| c.raw).as_deref(), Some("%"));
    }

    #[test]
    fn exchange_create_call_takes_id_from_body() {
        let body = br##"{"@odata.type":"#microsoft.graph.call","id":"2f1a0b00-ef1d-4bd3-a8d2-a1f2b3c4d5e6","state":"establishing","myParticipantId":"x"}"##;
        let ids = ids_from_exchange(
            "POST",
            "/v1.0/communications/calls",
            Some(201),
            Some("https://graph.microsoft.com/v1.0/communications/calls/00000000-0000-0000-0000-000000000001"),
            body,
        );
        assert_eq!(norm(&ids), (Some("2f1a0b00ef1d4bd3a8d2a1f2b3c4d5e6"), None));
    }

    #[test]
    fn exchange_create_call_falls_back_to_location() {
        // Seed: join channel meeting, 201 with Location and no body.
        let ids = ids_from_exchange(
            "post",
            "/app/calls",
            Some(201),
            Some("https://graph.microsoft.com/beta/app/calls/90ED37DCD8E34E119DE330A955DDA06F"),
            b"",
        );
        assert_eq!(norm(&ids), (Some("90ed37dcd8e34e119de330a955dda06f"), None));
    }

    #[test]
    fn exchange_only_post_to_bare_collection_creates_a_call() {
        let body = br#"{"id":"abc","status":"running"}"#;
        assert_eq!(
            ids_from_exchange("GET", "/v1.0/communications/calls", Some(200), None, body),
            CallIds::default()
        );
        assert_eq!(
            ids_from_exchange(
                "POST",
                "/v1.0/communications/calls/logTeleconferenceDeviceQuality",
                Some(200),
                None,
                body
            ),
            CallIds::default()
        );
    }

    #[test]
    fn exchange_operation_prefers_location_then_body() {
        // Seed: invite from the initial incoming call; the doc's body id is a
        // placeholder, the Location is authoritative.
        let body = br#"{"clientContext":"clientContext-value","createdDateTime":"2018-03-19T09:46:02Z","id":"id-value","lastActionDateTime":"2018-03-19T09:46:02Z","status":"Running"}"#;
        let ids = ids_from_exchange(
            "POST",
            "/app/calls/90ED37DCD8E34E119DE330A955DDA06F/participants/invite",
            Some(200),
            Some("https://graph.microsoft.com/beta/app/calls/90ED37DCD8E34E119DE330A955DDA06F/operations/0FE0623FD62842EDB4BD8AC290072CC5"),
            body,
        );
        assert_eq!(
            norm(&ids),
            (Some("90ed37dcd8e34e119de330a955dda06f"), Some(OP_NORM))
        );

        // Seed: invite in existing P2P meeting, body only.
        let body = br#"{"id":"17e3b46c-f61d-4f4d-9635-c626ef18e6ad","status":"running","clientContext":"d45324c1-fcb5-430a-902c-f20af696537c"}"#;
        let ids = ids_from_exchange(
            "POST",
            &format!("/app/calls/{CALL_UPPER}/participants/invite"),
            Some(200),
            None,
            body,
        );
        assert_eq!(
            ids.operation,
            Some(id("17e3b46c-f61d-4f4d-9635-c626ef18e6ad"))
        );
        assert_eq!(ids.call, Some(id(CALL_UPPER)));
    }

    #[test]
    fn exchange_body_without_status_is_not_an_operation() {
        let body = br#"{"id":"57dab8b1-894c-409a-b240-bd8beae78896","state":"established"}"#;
        let ids = ids_from_exchange(
            "GET",
            &format!("/v1.0/communications/calls/{CALL_DASHED}"),
            Some(200),
            None,
            body,
        );
        assert_eq!(norm(&ids), (Some(CALL_NORM), None));
    }

    #[test]
    fn exchange_path_ids_win() {
        let ids = ids_from_exchange(
            "GET",
            &format!("/v1.0/communications/calls/{CALL_UPPER}/operations/{OP_NORM}"),
            Some(200),
            Some("https://graph.microsoft.com/v1.0/communications/calls/other/operations/other-op"),
            br#"{"id":"another","status":"completed"}"#,
        );
        assert_eq!(norm(&ids), (Some(CALL_NORM), Some(OP_NORM)));
    }

    #[test]
    fn exchange_error_response_and_non_calls_paths_use_path_only() {
        let body = br#"{"id":"abc","status":"failed"}"#;
        let ids = ids_from_exchange(
            "POST",
            &format!("/v1.0/communications/calls/{CALL_UPPER}/playPrompt"),
            Some(400),
            Some("https://graph.microsoft.com/v1.0/communications/calls/x/operations/y"),
            body,
        );
        assert_eq!(norm(&ids), (Some(CALL_NORM), None));
        let ids = ids_from_exchange("POST", "/v1.0/communications/calls", Some(500), None, body);
        assert_eq!(ids, CallIds::default());
        let ids = ids_from_exchange("POST", "/v1.0/me", None, None, br#"{"id":"abc"}"#);
        assert_eq!(ids, CallIds::default());
    }

    #[test]
    fn exchange_ignores_bad_and_null_bodies() {
        for body in [
            &b"\xff\xfe\x00garbage"[..],
            b"[1,2]",
            b"{\"id\":null,\"status\":\"running\"}",
            b"{\"id\":\"null\",\"status\":\"running\"}",
            b"{\"id\":42}",
        ] {
            let ids = ids_from_exchange(
                "POST",
                &format!("/communications/calls/{CALL_UPPER}/mute"),
                None,
                None,
                body,
            );
            assert_eq!(norm(&ids), (Some(CALL_NORM), None), "{body:?}");
            let ids = ids_from_exchange("POST", "/communications/calls", None, None, body);
            assert_eq!(ids, CallIds::default(), "{body:?}");
        }
        // An "id" whose "status" is not a string is no commsOperation.
        let ids = ids_from_exchange(
            "POST",
            &format!("/communications/calls/{CALL_UPPER}/mute"),
            Some(200),
            None,
            br#"{"id":"op","status":null}"#,
        );
        assert_eq!(norm(&ids), (Some(CALL_NORM), None));
    }

    #[test]
    fn normalize_path_example_from_spec() {
        assert_eq!(
            normalize_path(
                "/beta/app/calls/57DAB8B1-894C-409A-B240-BD8BEAE78896/microsoft.graph.answer"
            ),
            "/communications/calls/57dab8b1894c409ab240bd8beae78896/answer"
        );
    }

    #[test]
    fn normalize_path_unifies_spellings() {
        let expected = format!("/communications/calls/{CALL_NORM}/participants/8a34a46b/invite");
        for path in [
            format!("/v1.0/communications/calls/{CALL_DASHED}/participants/8A34-A46B/invite"),
            format!("/app/calls/{CALL_UPPER}/Participants/8a34a46b/microsoft.graph.Invite/"),
            format!("https://graph.microsoft.com/beta/applications/APP/calls/{CALL_UPPER}/participants/8A34A46B/invite?x=1"),
            format!("calls//{CALL_UPPER}//participants/8A34A46B/INVITE"),
        ] {
            assert_eq!(normalize_path(&path), expected, "{path}");
        }
        assert_eq!(
            normalize_path(&format!("/communications/calls/{CALL_UPPER}/operations/0FE0623F-D628-42ED-B4BD-8AC290072CC5")),
            format!("/communications/calls/{CALL_NORM}/operations/{OP_NORM}")
        );
        assert_eq!(
            normalize_path("/v1.0/communications/calls/"),
            "/communications/calls"
        );
    }

    #[test]
    fn normalize_path_keeps_non_calls_paths_and_stays_unambiguous() {
        assert_eq!(normalize_path("/v1.0/me/"), "/me");
        assert_eq!(normalize_path("/v1.0/Users/ABC?$top=1"), "/Users/ABC");
        assert_eq!(normalize_path(""), "/");
        assert_eq!(normalize_path("/beta"), "/");
        // Only a real version segment is dropped.
        assert_eq!(normalize_path("/V2/me"), "/me");
        assert_eq!(normalize_path("/v/me"), "/v/me");
        assert_eq!(normalize_path("/v.1/me"), "/v.1/me");
        assert_eq!(normalize_path("/vnext/me"), "/vnext/me");
        assert_eq!(normalize_path("https://graph.microsoft.com"), "/");
        // A decoded '/' in an id must not read as a segment boundary.
        assert_eq!(
            normalize_path("/communications/calls/a%2Fb/participants"),
            "/communications/calls/a%2Fb/participants"
        );
        assert_ne!(
            normalize_path("/communications/calls/a%2Fb"),
            normalize_path("/communications/calls/a/b")
        );
        assert_eq!(
            normalize_path("/calls/a%20b"),
            "/communications/calls/a%20b"
        );
        assert_eq!(normalize_path("/calls/null"), "/communications/calls/null");
    }

    #[test]
    fn notification_incoming_call() {
        let n = parse_one(INCOMING);
        assert_eq!(n.index, 0);
        assert_eq!(n.change_type.as_deref(), Some("created"));
        assert_eq!(
            n.resource.as_deref(),
            Some("/app/calls/57DAB8B1894C409AB240BD8BEAE78896")
        );
        // Seed payloads have `resource` but no `resourceUrl`.
        assert_eq!(n.resource_url, None);
        assert_eq!(n.odata_type.as_deref(), Some("#microsoft.graph.call"));
        assert_eq!(n.call, Some(id(CALL_UPPER)));
        assert_eq!(n.operation, None);
        assert_eq!(n.state.as_deref(), Some("incoming"));
        assert_eq!(n.status, None);
        // The id in the notification matches the one from a Location header.
        let loc = ids_from_path(&format!(
            "https://graph.microsoft.com/beta/app/calls/{CALL_DASHED}"
        ));
        assert_eq!(loc.call.map(|c| c.norm), n.call.map(|c| c.norm));
    }

    #[test]
    fn notification_operation_completed() {
        let n = parse_one(OP_DELETED);
        assert_eq!(n.change_type.as_deref(), Some("deleted"));
        assert_eq!(
            n.odata_type.as_deref(),
            Some("#microsoft.graph.commsOperation")
        );
        assert_eq!(
            norm(&CallIds {
                call: n.call,
                operation: n.operation
            }),
            (Some(CALL_NORM), Some(OP_NORM))
        );
        assert_eq!(n.status.as_deref(), Some("completed"));
        assert_eq!(n.state, None);
    }

    #[test]
    fn notification_roster_array() {
        let n = parse_one(ROSTER);
        assert_eq!(n.change_type.as_deref(), Some("updated"));
        assert_eq!(
            n.odata_type.as_deref(),
            Some("#microsoft.graph.participant")
        );
        assert_eq!(n.call, Some(id(CALL_UPPER)));
        assert_eq!(n.operation, None);
        assert_eq!((n.state, n.status), (None, None));
    }

    #[test]
    fn notification_batch_of_two() {
        let all = parse_notifications(TWO.as_bytes()).expect("parses");
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].index, 0);
        assert_eq!(all[0].change_type.as_deref(), Some("Updated"));
        assert_eq!(all[0].call, Some(id("90ED37DCD8E34E119DE330A955DDA06F")));
        assert_eq!(all[0].state.as_deref(), Some("establishing"));
        assert_eq!(all[1].index, 1);
        assert_eq!(all[1].call, Some(id(CALL_UPPER)));
        assert_eq!(all[1].state.as_deref(), Some("terminated"));
    }

    #[test]
    fn notification_resource_url_wins_and_null_ids_fall_through() {
        let body = r#"{"value":[{
            "changeType":"updated",
            "resource":"/app/calls/AAAA",
            "resourceUrl":"/communications/calls/BBBB/operations/CCCC",
            "resourceData":{"@odata.id":"/app/calls/DDDD"}
        }]}"#;
        let n = parse_one(body);
        assert_eq!(n.call.map(|c| c.raw).as_deref(), Some("BBBB"));
        assert_eq!(n.operation.map(|c| c.raw).as_deref(), Some("CCCC"));

        let body = r#"{"value":[{
            "changeType":"updated",
            "resource":null,
            "resourceUrl":"/communications/calls/null",
            "resourceData":{"@odata.id":"/app/calls/DDDD","state":null,"status":"Running"}
        }]}"#;
        let n = parse_one(body);
        assert_eq!(n.resource, None);
        assert_eq!(
            n.resource_url.as_deref(),
            Some("/communications/calls/null")
        );
        assert_eq!(n.call.map(|c| c.raw).as_deref(), Some("DDDD"));
        assert_eq!(n.state, None);
        assert_eq!(n.status.as_deref(), Some("Running"));

        let body =
            r#"{"value":[{"changeType":null,"resource":"/app/calls/null","resourceData":null}]}"#;
        let n = parse_one(body);
        assert_eq!(n.change_type, None);
        assert_eq!((n.call, n.operation, n.odata_type), (None, None, None));
    }

    #[test]
    fn notification_legacy_single_object_and_skipped_entries() {
        let n = parse_one(
            r#"{"changeType":"updated","resource":"/app/calls/ABC","resourceData":{"state":"established"}}"#,
        );
        assert_eq!(n.index, 0);
        assert_eq!(n.call.map(|c| c.norm).as_deref(), Some("abc"));
        assert_eq!(n.state.as_deref(), Some("established"));

        let all = parse_notifications(
            br#"{"value":[null, 3, "x", {"changeType":"deleted","resource":"/app/calls/ABC"}, []]}"#,
        )
        .expect("parses");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].index, 3);

        assert_eq!(parse_notifications(br#"{"value":[]}"#), Ok(vec![]));
    }

    #[test]
    fn notification_errors() {
        for body in [
            &b"\xff\xfe\x00\x80garbage"[..],
            b"",
            b"{",
            b"{\"value\":[\"\xff\"]}",
        ] {
            assert!(
                matches!(
                    parse_notifications(body),
                    Err(NotificationError::NotJson(_))
                ),
                "{body:?}"
            );
        }
        for body in [&b"{}"[..], b"[]", b"42", b"\"value\"", br#"{"value":{}}"#] {
            assert_eq!(
                parse_notifications(body),
                Err(NotificationError::NoValueArray),
                "{body:?}"
            );
        }
        let err: Box<dyn std::error::Error> = Box::new(NotificationError::NoValueArray);
        assert!(err.to_string().contains("value"));
        assert!(NotificationError::NotJson("eof".into())
            .to_string()
            .ends_with("eof"));
    }

    #[test]
    fn bom_is_tolerated() {
        let mut body = b"\xEF\xBB\xBF".to_vec();
        body.extend_from_slice(INCOMING.as_bytes());
        assert_eq!(parse_notifications(&body).map(|v| v.len()), Ok(1));
    }

    #[test]
    fn indexes_serialise_with_field_names() {
        let n = parse_one(OP_DELETED);
        let json = serde_json::to_value(&n).expect("serialises");
        assert_eq!(json["call"]["norm"], CALL_NORM);
        assert_eq!(json["operation"]["raw"], "0FE0623FD62842EDB4BD8AC290072CC5");
        assert_eq!(json["change_type"], "deleted");
    }

    #[test]
    fn no_input_panics() {
        let samples: [&[u8]; 8] = [
            b"https://graph.microsoft.com/beta/applications/x/calls/%7Bab-CD%7D/operations/%E2%82%AC?q=1#f",
            "/calls/é€/microsoft.graph.mute/%C3%A9/".as_bytes(),
            b"{\"value\":[{\"resource\":\"/app/calls/%\",\"resourceData\":[1,{\"@odata.id\":\"calls/x\"}]}]}",
            b"\xEF\xBB\xBF{\"changeType\":\"x\"}",
            b"://%%%/microsoft.graph.",
            b"v1.0/V/beta/app/calls/{}/operations/{}",
            b"\xff\xfe\xfd\x00\x01%",
            INCOMING.as_bytes(),
        ];
        for sample in samples {
            for end in 0..=sample.len() {
                for start in 0..=end.min(8) {
                    let bytes = &sample[start..end];
                    let text = String::from_utf8_lossy(bytes);
                    let _ = normalize_id(&text);
                    let _ = ids_from_path(&text);
                    let _ = normalize_path(&text);
                    let _ = ids_from_exchange("POST", &text, Some(201), Some(&text), bytes);
                    let _ = ids_from_exchange("GET", "/calls/a", None, Some(&text), bytes);
                    let _ = parse_notifications(bytes);
                }
            }
        }
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use crate::proptest_support::{json_value, near_json, spell};
    use proptest::prelude::*;
    use serde_json::Value;

    /// The serde_json `Value` implementation the tokenizer replaced: the oracle.
    mod reference {
        use super::super::{
            ids_from_path, normalize_id, CallIds, IdRef, NotificationError, NotificationIndex,
        };
        use serde_json::{Map, Value};

        fn id_ref(raw: &str) -> Option<IdRef> {
            normalize_id(raw).map(|norm| IdRef {
                raw: raw.to_owned(),
                norm,
            })
        }

        pub(super) fn parse_notifications(
            body: &[u8],
        ) -> Result<Vec<NotificationIndex>, NotificationError> {
            let value: Value = serde_json::from_slice(strip_bom(body))
                .map_err(|e| NotificationError::NotJson(e.to_string()))?;
            let Value::Object(top) = value else {
                return Err(NotificationError::NoValueArray);
            };
            if let Some(Value::Array(entries)) = top.get("value") {
                return Ok(entries
                    .iter()
                    .enumerate()
                    .filter_map(|(i, entry)| entry.as_object().map(|n| index_notification(i, n)))
                    .collect());
            }
            if top.contains_key("changeType") || top.contains_key("resource") {
                return Ok(vec![index_notification(0, &top)]);
            }
            Err(NotificationError::NoValueArray)
        }

        /// A UTF-8 byte-order mark is not JSON but some HTTP stacks prepend one.
        fn strip_bom(body: &[u8]) -> &[u8] {
            body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body)
        }

        /// The response body as a JSON object, if it is one.
        pub(super) fn json_object(body: &[u8]) -> Option<Map<String, Value>> {
            match serde_json::from_slice(strip_bom(body)) {
                Ok(Value::Object(map)) => Some(map),
                _ => None,
            }
        }

        fn str_field<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
            map.get(key).and_then(Value::as_str)
        }

        pub(super) fn id_field(map: &Map<String, Value>, key: &str) -> Option<IdRef> {
            str_field(map, key).and_then(id_ref)
        }

        fn index_notification(index: usize, n: &Map<String, Value>) -> NotificationIndex {
            let resource_url = str_field(n, "resourceUrl");
            let resource = str_field(n, "resource");
            let data = n.get("resourceData");
            let data_object = data.and_then(Value::as_object);
            // A roster is an array of participants; its first one stands for the
            // type and, failing the resource fields, for the call.
            let representative = match data {
                Some(Value::Array(items)) => items.iter().find_map(Value::as_object),
                _ => data_object,
            };
            let odata_id = representative.and_then(|d| str_field(d, "@odata.id"));
            let named: Vec<CallIds> = [resource_url, resource, odata_id]
                .into_iter()
                .flatten()
                .map(ids_from_path)
                .collect();
            let owned = |s: Option<&str>| s.map(str::to_owned);
            NotificationIndex {
                index,
                change_type: owned(str_field(n, "changeType")),
                resource: owned(resource),
                resource_url: owned(resource_url),
                odata_type: owned(representative.and_then(|d| str_field(d, "@odata.type"))),
                call: named.iter().find_map(|ids| ids.call.clone()),
                operation: named.iter().find_map(|ids| ids.operation.clone()),
                state: owned(data_object.and_then(|d| str_field(d, "state"))),
                status: owned(data_object.and_then(|d| str_field(d, "status"))),
            }
        }
    }

    /// Notification-shaped documents: entries with the fields the index reads, of any
    /// type, duplicated, among arbitrary members.
    fn notification_body() -> impl Strategy<Value = Value> {
        let field = prop_oneof![
            json_value(),
            "[0-9A-F]{8}".prop_map(|id| Value::from(format!("/app/calls/{id}/operations/{id}"))),
            Just(Value::from("updated")),
        ];
        let key = prop::sample::select(vec![
            "changeType",
            "resource",
            "resourceUrl",
            "resourceData",
            "state",
            "status",
            "@odata.type",
            "@odata.id",
            "value",
            "other",
        ]);
        let object = prop::collection::vec((key, field), 0..6);
        let data = prop_oneof![
            object.clone().prop_map(|m| Value::Object(
                m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
            prop::collection::vec(
                prop_oneof![
                    object.clone().prop_map(|m| Value::Object(
                        m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                    )),
                    json_value(),
                ],
                0..3
            )
            .prop_map(Value::Array),
            json_value(),
        ];
        let entry = (object, data).prop_map(|(members, data)| {
            let mut map: serde_json::Map<String, Value> = members
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            map.insert("resourceData".into(), data);
            Value::Object(map)
        });
        (
            prop::collection::vec(prop_oneof![entry.clone(), json_value()], 0..4),
            entry,
            any::<bool>(),
        )
            .prop_map(|(entries, single, legacy)| {
                if legacy {
                    single
                } else {
                    serde_json::json!({"value": entries})
                }
            })
    }

    fn serde_limit(message: &str) -> bool {
        message.contains("recursion limit")
            || message.contains("out of range")
            || message.contains("surrogate")
    }

    /// Duplicate keys, which a parsed object resolves last-wins: repeat a member.
    fn with_duplicate(text: &[u8], at: usize) -> Vec<u8> {
        let s = String::from_utf8_lossy(text).into_owned();
        match s.find("\"value\":") {
            Some(i) if at.is_multiple_of(2) => {
                format!("{}\"value\":7,{}", &s[..i], &s[i..]).into_bytes()
            }
            _ => s.into_bytes(),
        }
    }

    /// A GUID spelled as Graph spells it in one place or another.
    fn guid_spellings() -> impl Strategy<Value = (String, String, String)> {
        "[0-9a-f]{32}".prop_map(|hex| {
            let dashed = format!(
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            );
            (hex.clone(), dashed, hex.to_uppercase())
        })
    }

    proptest! {
        /// The one-pass index says what the serde_json implementation said.
        #[test]
        fn indexing_matches_the_value_based_reference(
            body in notification_body(), style in any::<u64>(), bytes in near_json(), at in any::<usize>(),
        ) {
            let spelled = spell(&body, style);
            for doc in [spelled.clone(), with_duplicate(&spelled, at), bytes] {
                let ours = parse_notifications(&doc);
                let theirs = reference::parse_notifications(&doc);
                match (&ours, &theirs) {
                    (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
                    (Err(NotificationError::NotJson(_)), Err(NotificationError::NotJson(m))) => {
                        let _ = m;
                    }
                    (Err(NotificationError::NoValueArray), Err(NotificationError::NoValueArray)) => {}
                    // serde_json's own limits (nesting, float range, lone surrogates).
                    (Ok(_) | Err(NotificationError::NoValueArray), Err(NotificationError::NotJson(m)))
                        if serde_limit(m) => {}
                    _ => prop_assert!(false, "ours {:?}, reference {:?}", ours, theirs),
                }
                let ours = top_fields(&doc).map(|t| (t.id, t.status_is_string));
                let theirs = reference::json_object(&doc).map(|b| {
                    (reference::id_field(&b, "id"), b.get("status").is_some_and(Value::is_string))
                });
                let limited = serde_json::from_slice::<Value>(jsonscan::strip_bom(&doc))
                    .is_err_and(|e| serde_limit(&e.to_string()));
                if !limited {
                    prop_assert_eq!(ours, theirs);
                }
            }
        }

        #[test]
        fn no_input_panics(bytes in near_json(), text in any::<String>(), status in any::<Option<u16>>()) {
            let _ = parse_notifications(&bytes);
            let _ = ids_from_path(&text);
            let _ = normalize_path(&text);
            let _ = normalize_id(&text);
            let _ = ids_from_exchange("POST", &text, status, Some(&text), &bytes);
            let _ = ids_from_exchange("POST", "/communications/calls", status, Some(&text), &bytes);
        }

        #[test]
        fn every_spelling_of_a_call_path_is_one_path(
            (call, call_dashed, call_upper) in guid_spellings(),
            (op, op_dashed, _) in guid_spellings(),
            version in prop::sample::select(vec!["", "/v1.0", "/beta"]),
            action in prop::sample::select(vec!["", "/participants/invite", "/microsoft.graph.answer", "/answer"]),
        ) {
            let canonical = normalize_path(&format!("/communications/calls/{call}{action}"));
            for spelled in [
                format!("{version}/app/calls/{call_upper}{action}"),
                format!("https://graph.microsoft.com{version}/communications/calls/{call_dashed}{action}?x=1"),
                format!("{version}/applications/app1/calls/{{{call_dashed}}}{action}/"),
            ] {
                prop_assert_eq!(&normalize_path(&spelled), &canonical, "{}", spelled);
            }
            let ids = ids_from_path(&format!("{version}/app/calls/{call_upper}/operations/{op_dashed}"));
            prop_assert_eq!(ids.call.map(|c| c.norm), Some(call.clone()));
            prop_assert_eq!(ids.operation.map(|o| o.norm), Some(op));
        }

        #[test]
        fn every_notification_object_is_indexed_at_its_position(
            entries in prop::collection::vec(prop_oneof![
                json_value(),
                "[0-9A-F]{32}".prop_map(|id| serde_json::json!({
                    "changeType": "updated",
                    "resource": format!("/app/calls/{id}"),
                    "resourceData": {"state": "established"},
                })),
            ], 0..6),
            style in any::<u64>(),
        ) {
            let body = spell(&serde_json::json!({"value": entries}), style);
            let indexed = parse_notifications(&body).unwrap();
            let objects: Vec<usize> = entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.is_object())
                .map(|(i, _)| i)
                .collect();
            prop_assert_eq!(indexed.iter().map(|n| n.index).collect::<Vec<_>>(), objects);
            for n in &indexed {
                let entry = &entries[n.index];
                prop_assert_eq!(n.change_type.as_deref(), entry.get("changeType").and_then(Value::as_str));
                if let (Some(resource), None) = (
                    entry.get("resource").and_then(Value::as_str),
                    entry.get("resourceUrl"),
                ) {
                    if let Some(id) = resource.strip_prefix("/app/calls/").filter(|id| !id.contains('/')) {
                        prop_assert_eq!(n.call.as_ref().map(|c| c.norm.clone()), normalize_id(id));
                    }
                }
            }
        }
    }
}
