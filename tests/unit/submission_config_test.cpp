// Tests for the "submission" section of the configuration: defaults, the relay pool and its
// checks (configured back-ends with a submission port only), and the RFC 5321 timeouts.
#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "proxy/config/config.h"

namespace gatehouse {
namespace {

constexpr const char* kBase = R"({
  "listeners": [{"address": "127.0.0.1", "port": 0, "protocol": "submission"}],
  "backends": [
    {"name": "A", "address": "127.0.0.11", "ports": {"imap": 143}},
    {"name": "smtp", "address": "127.0.0.13", "ports": {"submission": 587}}
  ])";

std::shared_ptr<const Config> parse(const std::string& submission,
                                    std::vector<ConfigError>& errors) {
  std::string text = kBase;
  if (!submission.empty()) text += ", \"submission\": " + submission;
  text += "}";
  return parseConfig(text, "/nonexistent-gatehouse", errors);
}

TEST_CASE("config: submission defaults follow RFC 5321 4.5.3.2", "[config][smtp]") {
  std::vector<ConfigError> errors;
  auto config = parse("", errors);
  REQUIRE(config);
  CHECK(config->submission.relay_backends.empty());
  CHECK(config->submission.max_message_size == 0);
  CHECK(config->submission.command_timeout_ms == 300000);
  CHECK(config->submission.relay_idle_ms >= 600000);
  CHECK(config->submission.junk_command_limit == 100);  // Postfix's smtpd_junk_command_limit
}

TEST_CASE("config: a submission relay pool and its values", "[config][smtp]") {
  std::vector<ConfigError> errors;
  auto config = parse(R"({"relay_backends": ["smtp"], "max_message_size": 10240000,
                          "command_timeout_ms": 1000, "relay_idle_ms": 2000,
                          "junk_command_limit": 5})",
                      errors);
  REQUIRE(config);
  CHECK(config->submission.relay_backends == std::vector<std::string>{"smtp"});
  CHECK(config->submission.max_message_size == 10240000);
  CHECK(config->submission.command_timeout_ms == 1000);
  CHECK(config->submission.relay_idle_ms == 2000);
  CHECK(config->submission.junk_command_limit == 5);
}

TEST_CASE("config: the relay pool names configured submission back-ends only", "[config][smtp]") {
  std::vector<ConfigError> errors;
  CHECK_FALSE(
      parse(R"({"relay_backends": ["nowhere", "A", 7], "relay_idle_ms": 0, "x": 1})", errors));
  std::vector<std::string> pointers;
  for (const auto& e : errors) pointers.push_back(e.pointer);
  CHECK(std::count(pointers.begin(), pointers.end(), "/submission/relay_backends/0") == 1);
  CHECK(std::count(pointers.begin(), pointers.end(), "/submission/relay_backends/1") == 1);
  CHECK(std::count(pointers.begin(), pointers.end(), "/submission/relay_backends/2") == 1);
  CHECK(std::count(pointers.begin(), pointers.end(), "/submission/relay_idle_ms") == 1);
  CHECK(std::count(pointers.begin(), pointers.end(), "/submission/x") == 1);
  for (const auto& e : errors) {
    if (e.pointer == "/submission/relay_backends/1")
      CHECK(e.message.find("no submission port") != std::string::npos);
  }
}

}  // namespace
}  // namespace gatehouse
