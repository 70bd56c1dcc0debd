// Entry points of the configuration: protocol names, and loading a file or text into an
// immutable, validated Config snapshot.
#include "proxy/config/config.h"

#include <filesystem>
#include <system_error>

#include "proxy/config/config_json.h"
#include "proxy/config/config_loader.h"

namespace gatehouse {

const char* protocolName(Protocol p) {
  switch (p) {
    case Protocol::Imap:
      return "imap";
    case Protocol::Pop3:
      return "pop3";
    case Protocol::Submission:
      return "submission";
    case Protocol::Http:
      return "http";
  }
  return "unknown";
}

const char* alpnName(Protocol p) {
  switch (p) {
    case Protocol::Imap:
      return "imap";
    case Protocol::Pop3:
      return "pop3";
    case Protocol::Submission:
      return "smtp";
    case Protocol::Http:
      return "http/1.1";
  }
  return "";
}

std::shared_ptr<const Config> parseConfig(const std::string& json_text, const std::string& base_dir,
                                          std::vector<ConfigError>& errors) {
  size_t first = errors.size();
  std::error_code ec;
  std::filesystem::path base =
      std::filesystem::absolute(std::filesystem::path(base_dir.empty() ? "." : base_dir), ec);
  if (ec) {
    errors.push_back(
        {"", "cannot resolve directory " + config_json::quoteJson(base_dir) + ": " + ec.message()});
    return nullptr;
  }
  auto document = config_json::parseDocument(json_text, "", errors);
  if (!document) return nullptr;
  Config config = buildConfig(*document, base.lexically_normal(), errors);
  if (errors.size() != first) return nullptr;
  return std::make_shared<const Config>(std::move(config));
}

std::shared_ptr<const Config> loadConfig(const std::string& path,
                                         std::vector<ConfigError>& errors) {
  std::error_code ec;
  std::filesystem::path absolute = std::filesystem::absolute(path, ec);
  std::string problem;
  std::optional<std::string> text;
  if (ec) {
    problem = ec.message();
  } else {
    text = readTextFile(absolute, problem);
  }
  if (!text) {
    errors.push_back(
        {"", "cannot read configuration file " + config_json::quoteJson(path) + ": " + problem});
    return nullptr;
  }
  return parseConfig(*text, absolute.parent_path().string(), errors);
}

}  // namespace gatehouse
