#include <warren/net/identity.hpp>

#include <cstdio>

namespace warren::net {

namespace {

/// Decodes the UTF-8 sequence at `s[i]`: its code point and length, or false when it
/// is invalid (truncated, a bad continuation byte, overlong, a surrogate, > U+10FFFF).
bool decode_utf8(std::string_view s, std::size_t i, char32_t& cp, std::size_t& len) {
  auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    cp = c;
    len = 1;
    return true;
  }
  char32_t min = 0;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2, cp = c & 0x1f, min = 0x80;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3, cp = c & 0x0f, min = 0x800;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return false; // a continuation byte first, C0/C1 (overlong), or F5..FF
  }
  if (i + len > s.size())
    return false;
  for (std::size_t k = 1; k < len; ++k) {
    auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xc0) != 0x80)
      return false;
    cp = (cp << 6) | (b & 0x3f);
  }
  return cp >= min && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
}

/// What makes a code point unfit, or null.
const char* unfit(char32_t cp) {
  if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f))
    return "control character";
  if (cp == 0x2028 || cp == 0x2029)
    return "line separator";
  if ((cp >= 0x200b && cp <= 0x200f) || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2060 && cp <= 0x2064) ||
      (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff)
    return "invisible or bidirectional format character";
  return nullptr;
}

} // namespace

std::string identity_problem(std::string_view id) {
  if (id.empty())
    return "is empty";
  if (id.size() > max_identity_bytes)
    return "is longer than " + std::to_string(max_identity_bytes) + " bytes (" + std::to_string(id.size()) +
           ")";
  for (std::size_t i = 0; i < id.size();) {
    char32_t cp = 0;
    std::size_t len = 1;
    if (!decode_utf8(id, i, cp, len))
      return "is not valid UTF-8 at byte " + std::to_string(i);
    if (const char* what = unfit(cp)) {
      char code[16];
      // C0 and DEL as bytes (0x0a), the rest as code points (U+0085).
      if (cp < 0x80)
        std::snprintf(code, sizeof(code), "0x%02x", static_cast<unsigned>(cp));
      else
        std::snprintf(code, sizeof(code), "U+%04X", static_cast<unsigned>(cp));
      return std::string{"contains "} + what + " " + code + " at byte " + std::to_string(i);
    }
    i += len;
  }
  return {};
}

} // namespace warren::net
