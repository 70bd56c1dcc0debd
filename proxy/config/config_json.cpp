// Strict JSON reading for the configuration: duplicate keys, unknown keys and wrong types are all
// reported at their JSON pointer instead of being ignored or thrown.
#include "proxy/config/config_json.h"

#include <set>

namespace gatehouse::config_json {
namespace {

// A real configuration nests four levels; the bound keeps recursive code (dump, destruction)
// far from the stack limit whatever a file contains.
constexpr size_t kMaxDepth = 64;

struct TooDeep {};

// One open container while parsing, to name the pointer of a duplicate key.
struct Frame {
  bool is_object = false;
  std::set<std::string> keys;
  std::string key;   // object: the key being read
  size_t count = 0;  // array: elements started so far
};

std::string framesPointer(const std::string& prefix, const std::vector<Frame>& frames) {
  std::string pointer = prefix;
  for (const Frame& frame : frames) {
    if (frame.is_object) {
      pointer = pointerTo(pointer, frame.key);
    } else {
      pointer = pointerTo(pointer, frame.count == 0 ? 0 : frame.count - 1);
    }
  }
  return pointer;
}

// nlohmann's messages start with "[json.exception.parse_error.101] "; the reader needs the rest.
std::string withoutExceptionTag(const std::string& what) {
  if (what.rfind("[json.exception.", 0) == 0) {
    size_t end = what.find("] ");
    if (end != std::string::npos) return what.substr(end + 2);
  }
  return what;
}

}  // namespace

std::string pointerTo(const std::string& parent, std::string_view key) {
  std::string out = parent + "/";
  for (char c : key) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

std::string pointerTo(const std::string& parent, size_t index) {
  return parent + "/" + std::to_string(index);
}

std::string quoteJson(std::string_view value) {
  return Json(std::string(value)).dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::optional<Json> parseDocument(std::string_view text, const std::string& prefix,
                                  std::vector<ConfigError>& errors) {
  std::vector<Frame> frames;
  std::vector<ConfigError> duplicates;
  auto track = [&](int /*depth*/, Json::parse_event_t event, Json& parsed) {
    using Event = Json::parse_event_t;
    bool starts_value =
        event == Event::object_start || event == Event::array_start || event == Event::value;
    if (starts_value && !frames.empty() && !frames.back().is_object) ++frames.back().count;
    switch (event) {
      case Event::object_start:
      case Event::array_start:
        if (frames.size() >= kMaxDepth) throw TooDeep{};
        frames.push_back(Frame{event == Event::object_start, {}, {}, 0});
        break;
      case Event::object_end:
      case Event::array_end:
        if (!frames.empty()) frames.pop_back();
        break;
      case Event::key: {
        Frame& frame = frames.back();
        frame.key = parsed.get<std::string>();
        if (!frame.keys.insert(frame.key).second) {
          duplicates.push_back({framesPointer(prefix, frames), "duplicate key"});
        }
        break;
      }
      case Event::value:
        break;
    }
    return true;
  };
  try {
    Json document = Json::parse(text.begin(), text.end(), track);
    errors.insert(errors.end(), duplicates.begin(), duplicates.end());
    return document;
  } catch (const Json::exception& e) {
    errors.push_back({prefix, "invalid JSON: " + withoutExceptionTag(e.what())});
  } catch (const TooDeep&) {
    errors.push_back({framesPointer(prefix, frames),
                      "nested deeper than " + std::to_string(kMaxDepth) + " levels"});
  }
  return std::nullopt;
}

ObjectReader::ObjectReader(const Json& value, std::string pointer, std::vector<ConfigError>& errors,
                           std::initializer_list<std::string_view> known)
    : pointer_(std::move(pointer)), errors_(&errors) {
  if (!value.is_object()) {
    error(pointer_, "must be an object");
    return;
  }
  object_ = &value;
  for (const auto& [key, member] : value.items()) {
    bool is_known = false;
    for (std::string_view name : known) is_known = is_known || name == key;
    if (!is_known) {
      error(pointerOf(key), "unknown key " + quoteJson(key) + " (expected " +
                                joinNames(std::vector<std::string_view>(known)) + ")");
    }
  }
}

const Json* ObjectReader::find(std::string_view key) const {
  if (object_ == nullptr) return nullptr;
  auto it = object_->find(key);
  return it == object_->end() ? nullptr : &*it;
}

void ObjectReader::error(std::string pointer, std::string message) const {
  errors_->push_back({std::move(pointer), std::move(message)});
}

const Json* ObjectReader::required(std::string_view key, Need need) const {
  const Json* member = find(key);
  if (member == nullptr && need == Need::Required && object_ != nullptr) {
    error(pointerOf(key), "missing required key");
  }
  return member;
}

std::optional<std::string> ObjectReader::string(std::string_view key, Need need) const {
  const Json* member = required(key, need);
  if (member == nullptr) return std::nullopt;
  if (!member->is_string()) {
    error(pointerOf(key), "must be a string");
    return std::nullopt;
  }
  return member->get<std::string>();
}

std::optional<uint64_t> ObjectReader::integer(std::string_view key, uint64_t min, uint64_t max,
                                              Need need) const {
  const Json* member = required(key, need);
  if (member == nullptr) return std::nullopt;
  if (member->is_number_unsigned()) {
    uint64_t value = member->get<uint64_t>();
    if (value >= min && value <= max) return value;
  }
  error(pointerOf(key), "must be an integer " + std::to_string(min) + "-" + std::to_string(max));
  return std::nullopt;
}

std::optional<bool> ObjectReader::boolean(std::string_view key, Need need) const {
  const Json* member = required(key, need);
  if (member == nullptr) return std::nullopt;
  if (!member->is_boolean()) {
    error(pointerOf(key), "must be true or false");
    return std::nullopt;
  }
  return member->get<bool>();
}

const Json* ObjectReader::array(std::string_view key, Need need) const {
  const Json* member = required(key, need);
  if (member == nullptr) return nullptr;
  if (!member->is_array()) {
    error(pointerOf(key), "must be an array");
    return nullptr;
  }
  return member;
}

const Json* ObjectReader::object(std::string_view key, Need need) const {
  const Json* member = required(key, need);
  if (member == nullptr) return nullptr;
  if (!member->is_object()) {
    error(pointerOf(key), "must be an object");
    return nullptr;
  }
  return member;
}

std::string ObjectReader::joinNames(const std::vector<std::string_view>& names) {
  std::string out;
  for (std::string_view name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

}  // namespace gatehouse::config_json
