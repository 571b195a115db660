// What a device identity may be: a client certificate's CN (tls.hpp, certificate_cn)
// or a first line/frame (the gateway's identify = first_message). It goes into logs,
// JSON, routing keys and the admin API, so it must read as what it is.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace warren::net {

/// Longest identity accepted, in UTF-8 bytes.
constexpr std::size_t max_identity_bytes = 255;

/// Why `id` is no usable identity, or "" when it is one. Refused: empty; longer than
/// max_identity_bytes; not valid UTF-8 (overlong forms, surrogates, beyond U+10FFFF);
/// a control character (C0, DEL, C1); a line or paragraph separator (U+2028/9); an
/// invisible or bidirectional format character (U+200B–200F, 202A–202E, 2060–2064,
/// 2066–2069, FEFF). The reason completes a sentence about the id and says where:
/// "is empty", "contains control character 0x0a at byte 5", "contains line separator
/// U+2028 at byte 3", "is not valid UTF-8 at byte 0".
std::string identity_problem(std::string_view id);

} // namespace warren::net
