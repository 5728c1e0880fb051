// The console's pages as HTML text (console/pages.*): view models in, markup
// out, no I/O. Every value that came from outside (payloads, target answers,
// event types, target names, query parameters) passes through web::escape()
// here; the only markup is this file's own (and the chart's, equally escaped).
// Pages link one stylesheet and one script from /console/static/ (the content
// security policy allows nothing inline) and read whole without the script.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "console/sessions.h"
#include "journal/leases.h"
#include "journal/reports.h"

namespace mews::console::pages {

// The frame every page shares.
struct Chrome {
  Chrome(std::string title_text, std::string csrf_token = {}, std::string active_item = {},
         std::optional<std::int64_t> dead_letters = {})
      : title(std::move(title_text)), csrf(std::move(csrf_token)), active(std::move(active_item)), dead(dead_letters) {}
  std::string title;
  std::string csrf;                     // empty when signed out: no navigation, no sign-out
  std::string active;                   // "overview" or "dead-letters" highlights the navigation
  std::optional<std::int64_t> dead;     // dead letters in the navigation badge
  std::string notice;                   // one line at the top (plain text)
  int refresh_seconds = 0;              // reload the page (overview)
  bool refresh_without_script = false;  // reload only when the script does not run (live states)
};

struct TargetRow {
  journal::TargetQueue queue;
  std::string circuit;  // the engine's live state, else the journal's
  std::int64_t delivered_24h = 0;
  std::int64_t failed_24h = 0;
  std::vector<journal::ActivityBucket> chart;
};

struct JournalFacts {
  std::string path;
  std::uint64_t bytes = 0;
  std::optional<std::uint64_t> free_bytes;
  std::uint64_t min_free = 0;
  std::uint64_t max_size = 0;
};

struct IngestFacts {
  std::int64_t batches_hour = 0;
  std::vector<std::pair<std::string, std::uint64_t>> rejected_since_start;  // reason, count
  std::vector<std::pair<std::string, std::uint64_t>> rejected_hour;
  std::int64_t uptime_ms = 0;
};

struct Overview {
  std::int64_t now_ms = 0;
  std::vector<TargetRow> targets;
  int chart_hours = 6;
  std::int64_t chart_start_ms = 0;
  std::int64_t bucket_ms = 0;
  std::int64_t activity_as_of_ms = 0;
  JournalFacts journal;
  IngestFacts ingest;
  // Several relays on one PostgreSQL journal (relay/cluster.h); empty on one box.
  std::vector<journal::RelayRow> relays;
  std::map<std::string, std::string> dispatched_by;  // target -> relay holding its lease
};
std::string overview(const Chrome& chrome, const Overview& view);

// The list's filter as the operator typed it (shown back), and its query string.
struct Filter {
  std::string target;
  std::string reason;
  std::string since;
  std::string until;
  [[nodiscard]] std::string query() const;  // "target=..&reason=.." (URL-encoded), no leading '?'
  [[nodiscard]] bool empty() const { return target.empty() && reason.empty() && since.empty() && until.empty(); }
};

struct DeadLetterList {
  std::int64_t now_ms = 0;
  Filter filter;
  std::vector<std::string> filter_errors;  // each value the console could not read: 400, no list
  std::vector<std::string> targets;
  journal::DeadLetterPage page;
  std::map<std::int64_t, std::string> answers;  // delivery id -> the target's last response excerpt
  std::int64_t matching = 0;
  std::string newer_url;  // empty: no newer page
  std::string older_url;
};
std::string deadLetters(const Chrome& chrome, const DeadLetterList& view);

struct Detail {
  std::int64_t now_ms = 0;
  journal::DeliveryDetail delivery;
};
std::string detail(const Chrome& chrome, const Detail& view);

// Replay or purge many: how many, of what, before anything changes.
struct Confirm {
  bool purge = false;
  std::int64_t count = 0;
  std::string description;                                  // "of target crm, reason rejected"
  std::vector<std::pair<std::string, std::string>> fields;  // hidden fields for the POST
  std::string back_url;
};
std::string confirm(const Chrome& chrome, const Confirm& view);

struct ActionPage {
  ActionResult result;
  std::vector<std::pair<std::int64_t, journal::DeliveryState>> states;  // delivery id, state now (first 200)
  std::vector<std::pair<std::string, std::int64_t>> by_state;           // state, count over every tracked item
  std::int64_t now_ms = 0;
};
std::string action(const Chrome& chrome, const ActionPage& view);

struct SignIn {
  std::string nonce;  // the pre-session token: hidden field and cookie
  std::string next;
  std::string error;
  bool plain_password = false;  // [console] password is the credential, not password_hash
};
std::string signIn(const Chrome& chrome, const SignIn& view);
std::string notConfigured(const Chrome& chrome);
std::string message(const Chrome& chrome, const std::string& heading, const std::string& text);

}  // namespace mews::console::pages
