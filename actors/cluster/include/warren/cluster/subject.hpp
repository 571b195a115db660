// Ids in NATS subjects. A subject is dot-separated tokens; a token may not hold '.',
// the wildcards '*' and '>', white space or control bytes, and nothing guarantees
// non-ASCII passes every tool. encode_token() makes any id one safe token:
//
//   A-Z a-z 0-9 '-' '_'   stay as they are
//   every other byte      '~' and two upper-case hex digits ("a.b" -> "a~2Eb",
//                         "~" -> "~7E", "é" -> "~C3~A9")
//
// so the encoding is reversible and unique (one id, one token), and an id that is
// already plain (UUIDs, "sensor-1") reads the same in `nats sub` output.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace warren::cluster {

/// The token for `id` (empty for an empty id, which no subject may hold).
std::string encode_token(std::string_view id);

/// The id of a token made by encode_token; nothing for one it cannot have made (a
/// byte outside the plain set, '~' without two upper-case hex digits, an escape of a
/// plain byte, empty).
std::optional<std::string> decode_token(std::string_view token);

/// `prefix` + "." + encode_token(id).
std::string subject_for(std::string_view prefix, std::string_view id);

} // namespace warren::cluster
