// `console-password`: makes the [console] password_hash line. The password is
// read from stdin (typed twice, without echo, at a terminal), never from an
// argument (it would sit in the shell history and the process list).
#include <fmt/format.h>
#include <termios.h>
#include <unistd.h>

#include <iostream>

#include "auth/password.h"
#include "cli.h"

namespace mews::cli {
namespace {

// One line from stdin; at a terminal without echo, after `prompt` on stderr.
std::string readSecretLine(const char* prompt, bool terminal) {
  termios saved{};
  if (terminal) {
    std::cerr << prompt << std::flush;
    tcgetattr(STDIN_FILENO, &saved);
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  std::string line;
  const bool got = static_cast<bool>(std::getline(std::cin, line));
  if (terminal) {
    tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    std::cerr << "\n";
  }
  if (!got) throw std::runtime_error("no password on stdin");
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

int runConsolePassword(const GlobalOptions&, const std::vector<std::string>& args) {
  expectNoArguments(args);
  const bool terminal = isatty(STDIN_FILENO) != 0;
  const std::string password = readSecretLine("console password: ", terminal);
  if (password.size() < auth::kMinPasswordLength)
    throw std::runtime_error(fmt::format("the password needs at least {} characters", auth::kMinPasswordLength));
  if (terminal && readSecretLine("again: ", terminal) != password)
    throw std::runtime_error("the two passwords differ; nothing was made");
  std::cout << auth::hashPassword(password) << "\n";
  if (terminal)
    std::cerr << "put it in the config file:\n  [console]\n  password_hash = <the line above>\n"
                 "then restart the relay.\n";
  return kExitOk;
}

}  // namespace

Command consolePasswordCommand() {
  return {"console-password", "makes the [console] password_hash line from a password read on stdin",
          "usage: mews-relay console-password < password-file\n"
          "       mews-relay console-password          (asks twice at a terminal, without echo)\n\n"
          "Prints pbkdf2-sha256$ITERATIONS$SALT$HASH (PBKDF2-HMAC-SHA256, 600000 iterations,\n"
          "a random 16-byte salt) for [console] password_hash. The password needs at least\n"
          "12 characters and must not be a webhook token. Needs no config file.\n\n"
          "example:\n  mews-relay console-password\n",
          runConsolePassword};
}

}  // namespace mews::cli
