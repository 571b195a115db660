#include <warren/cluster/subject.hpp>

namespace warren::cluster {

namespace {

bool plain(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

} // namespace

std::string encode_token(std::string_view id) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(id.size());
  for (char ch : id) {
    auto c = static_cast<unsigned char>(ch);
    if (plain(c)) {
      out.push_back(ch);
    } else {
      out.push_back('~');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 0x0F]);
    }
  }
  return out;
}

std::optional<std::string> decode_token(std::string_view token) {
  if (token.empty())
    return std::nullopt;
  std::string out;
  out.reserve(token.size());
  for (std::size_t i = 0; i < token.size(); ++i) {
    auto c = static_cast<unsigned char>(token[i]);
    if (plain(c)) {
      out.push_back(token[i]);
      continue;
    }
    if (c != '~' || i + 2 >= token.size())
      return std::nullopt;
    auto hi = hex_value(token[i + 1]);
    auto lo = hex_value(token[i + 2]);
    if (hi < 0 || lo < 0)
      return std::nullopt;
    auto byte = static_cast<unsigned char>(hi * 16 + lo);
    if (plain(byte)) // not what encode_token writes: one id, one token
      return std::nullopt;
    out.push_back(static_cast<char>(byte));
    i += 2;
  }
  return out;
}

std::string subject_for(std::string_view prefix, std::string_view id) {
  std::string out;
  out.reserve(prefix.size() + 1 + id.size());
  out.append(prefix);
  out.push_back('.');
  out.append(encode_token(id));
  return out;
}

} // namespace warren::cluster
