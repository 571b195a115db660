#include <warren/net/identity.hpp>

#include <unicode/uchar.h>
#include <unicode/utf8.h>

#include <cstdint>
#include <cstdio>

namespace warren::net {

namespace {

/// What makes a code point unfit for any identity, or null. ICU's character database
/// decides, so the rules follow Unicode rather than a list of ranges kept by hand.
const char* unfit(UChar32 cp) {
  switch (u_charType(cp)) {
    case U_CONTROL_CHAR:
      return "control character";
    case U_FORMAT_CHAR:
      return "format character";
    case U_LINE_SEPARATOR:
      return "line separator";
    case U_PARAGRAPH_SEPARATOR:
      return "paragraph separator";
    case U_UNASSIGNED:
      return "unassigned code point";
    default:
      break;
  }
  if (u_hasBinaryProperty(cp, UCHAR_DEFAULT_IGNORABLE_CODE_POINT))
    return "default-ignorable character";
  return nullptr;
}

bool strict_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
         c == '.' || c == ':';
}

std::string at_byte(std::size_t i) {
  return " at byte " + std::to_string(i);
}

} // namespace

std::string identity_problem(std::string_view id, identity_profile profile) {
  if (id.empty())
    return "is empty";
  if (id.size() > max_identity_bytes)
    return "is longer than " + std::to_string(max_identity_bytes) + " bytes (" + std::to_string(id.size()) +
           ")";
  auto* s = reinterpret_cast<const uint8_t*>(id.data());
  auto n = static_cast<int32_t>(id.size()); // <= max_identity_bytes
  for (int32_t i = 0; i < n;) {
    auto start = static_cast<std::size_t>(i);
    UChar32 cp = 0;
    U8_NEXT(s, i, n, cp); // cp < 0: ill-formed (truncated, overlong, surrogate, > U+10FFFF)
    if (cp < 0)
      return "is not valid UTF-8" + at_byte(start);
    if (const char* what = unfit(cp)) {
      char code[16];
      // C0 and DEL as bytes (0x0a), the rest as code points (U+0085).
      if (cp < 0x80)
        std::snprintf(code, sizeof(code), "0x%02x", static_cast<unsigned>(cp));
      else
        std::snprintf(code, sizeof(code), "U+%04X", static_cast<unsigned>(cp));
      return std::string{"contains "} + what + " " + code + at_byte(start);
    }
  }
  if (profile == identity_profile::strict) {
    for (std::size_t i = 0; i < id.size(); ++i) {
      auto c = static_cast<unsigned char>(id[i]);
      if (strict_byte(c))
        continue;
      char shown[16]; // a printable ASCII byte as itself and its code, the rest as a code
      if (c >= 0x20 && c < 0x7f)
        std::snprintf(shown, sizeof(shown), "'%c' (0x%02x)", c, static_cast<unsigned>(c));
      else
        std::snprintf(shown, sizeof(shown), "0x%02x", static_cast<unsigned>(c));
      return std::string{"contains "} + shown + at_byte(i) +
             ", outside the strict profile (letters, digits, -_.:)";
    }
  }
  return {};
}

std::string to_string(identity_profile p) {
  return p == identity_profile::strict ? "strict" : "unicode";
}

bool from_string(std::string_view s, identity_profile& out) {
  if (s == "unicode")
    out = identity_profile::unicode;
  else if (s == "strict")
    out = identity_profile::strict;
  else
    return false;
  return true;
}

} // namespace warren::net
