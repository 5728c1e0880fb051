#include "journal/high_water.h"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace mews::journal {

namespace {

constexpr const char* kTables[] = {"batches", "deliveries", "dead_letters"};

std::int64_t& field(HighWater& mark, std::string_view table) {
  if (table == "batches") return mark.batches;
  if (table == "deliveries") return mark.deliveries;
  return mark.dead_letters;
}

std::int64_t field(const HighWater& mark, std::string_view table) {
  return field(const_cast<HighWater&>(mark), table);  // NOLINT: reads only
}

}  // namespace

HighWater currentHighWater(Journal& journal) {
  HighWater mark;
  mark.journal_id = journal.journalId();
  Statement& select = journal.db().cached("SELECT name, seq FROM sqlite_sequence");
  const ResetOnExit reset(select);
  while (select.step()) {
    const std::string name = select.columnText(0);
    for (const char* table : kTables)
      if (name == table) field(mark, name) = select.columnInt(1);
  }
  return mark;
}

std::string highWaterPath(const std::string& journal_path) {
  return journal_path + ".ids";
}

std::optional<HighWater> readHighWater(const std::string& journal_path) {
  std::ifstream in(highWaterPath(journal_path));
  if (!in) return std::nullopt;
  HighWater mark;
  if (!(in >> mark.journal_id >> mark.batches >> mark.deliveries >> mark.dead_letters)) return std::nullopt;
  return mark;
}

void writeHighWater(const std::string& journal_path, const HighWater& mark) {
  const std::string path = highWaterPath(journal_path);
  const std::string text =
      fmt::format("{} {} {} {}\n", mark.journal_id, mark.batches, mark.deliveries, mark.dead_letters);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) throw std::runtime_error(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
  const ssize_t wrote = ::pwrite(fd, text.data(), text.size(), 0);
  const int saved = errno;
  const bool sized =
      wrote == static_cast<ssize_t>(text.size()) && ::ftruncate(fd, static_cast<off_t>(text.size())) == 0;
  ::close(fd);
  if (!sized)
    throw std::runtime_error(fmt::format("cannot write {}: {}", path, std::strerror(wrote < 0 ? saved : errno)));
}

bool raiseSequences(Journal& journal, const HighWater& recorded) {
  if (recorded.journal_id != journal.journalId()) return false;
  HighWater now = currentHighWater(journal);
  bool raised = false;
  Transaction transaction(journal.db());
  for (const char* table : kTables) {
    const std::int64_t want = field(recorded, table);
    if (field(now, table) >= want) continue;
    // A table that never had a row has no sqlite_sequence row yet.
    journal.db()
        .prepare(
            "INSERT INTO sqlite_sequence (name, seq) SELECT ?1, 0 WHERE NOT EXISTS"
            " (SELECT 1 FROM sqlite_sequence WHERE name = ?1)")
        .bind(1, std::string_view(table))
        .run();
    journal.db()
        .prepare("UPDATE sqlite_sequence SET seq = ?2 WHERE name = ?1")
        .bind(1, std::string_view(table))
        .bind(2, want)
        .run();
    raised = true;
  }
  if (raised) transaction.commit();
  return raised;
}

}  // namespace mews::journal
