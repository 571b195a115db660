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

/// Which characters an identity may hold.
enum class identity_profile {
  /// Printable text in any script: every code point that is not refused by the
  /// Unicode properties below (the default).
  unicode,
  /// Only ASCII letters, digits and `-_.:` (no look-alike ids: "dev-1" and "dеv-1"
  /// with a Cyrillic е cannot both exist). Applied on top of the unicode rules.
  strict,
};

/// Why `id` is no usable identity under `profile`, or "" when it is one.
///
/// Refused by both profiles: empty; longer than max_identity_bytes; not valid UTF-8
/// (overlong forms, surrogates, beyond U+10FFFF); and, by the Unicode database (ICU),
/// a code point whose general category is Cc (control), Cf (format: bidirectional
/// marks, zero-width characters, soft hyphen, tags, ...), Zl or Zp (line and paragraph
/// separators) or Cn (unassigned, including the noncharacters), or that has the
/// Default_Ignorable_Code_Point property (drawn as nothing: variation selectors,
/// Hangul fillers, ...). The strict profile also refuses every byte outside
/// [A-Za-z0-9-_.:].
///
/// The reason completes a sentence about the id and says where: "is empty",
/// "contains control character 0x0a at byte 5", "contains format character U+202E at
/// byte 4", "is not valid UTF-8 at byte 0", "contains ' ' (0x20) at byte 3, outside
/// the strict profile (letters, digits, -_.:)".
std::string identity_problem(std::string_view id, identity_profile profile = identity_profile::unicode);

/// "unicode" or "strict".
std::string to_string(identity_profile p);
/// Parses "unicode" or "strict"; false for anything else.
bool from_string(std::string_view s, identity_profile& out);

} // namespace warren::net
