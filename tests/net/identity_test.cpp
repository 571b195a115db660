// warren::net::identity_problem: what a device identity (a certificate CN, a first
// line/frame) may be.
#include <warren/net/identity.hpp>

#include <doctest/doctest.h>

#include <string>

using warren::net::identity_problem;

TEST_CASE("identity: printable text in any script, up to 255 bytes, is an identity") {
  CHECK(identity_problem("dev-42") == "");
  CHECK(identity_problem("capteur-\xc3\xa9t\xc3\xa9") == "");                 // 2-byte sequences
  CHECK(identity_problem("\xe8\xae\xbe\xe5\xa4\x87-\xf0\x9f\x93\xa1") == ""); // 3 and 4 bytes
  CHECK(identity_problem("a b\\c\"d") == "");                                 // spaces, quotes
  CHECK(identity_problem(std::string(255, 'a')) == "");
  CHECK(identity_problem("\xef\xbf\xbd") == ""); // U+FFFD is a character like others
}

TEST_CASE("identity: empty, too long, or not UTF-8 is refused, saying where") {
  CHECK(identity_problem("") == "is empty");
  CHECK(identity_problem(std::string(256, 'a')) == "is longer than 255 bytes (256)");
  CHECK(identity_problem("dev-\xff") == "is not valid UTF-8 at byte 4");
  CHECK(identity_problem("\x80x") == "is not valid UTF-8 at byte 0");            // lone continuation
  CHECK(identity_problem("ab\xc3") == "is not valid UTF-8 at byte 2");           // truncated
  CHECK(identity_problem("\xc3(") == "is not valid UTF-8 at byte 0");            // bad continuation
  CHECK(identity_problem("\xc0\xaf") == "is not valid UTF-8 at byte 0");         // overlong '/'
  CHECK(identity_problem("\xe0\x80\xaf") == "is not valid UTF-8 at byte 0");     // overlong, 3 bytes
  CHECK(identity_problem("x\xed\xa0\x80") == "is not valid UTF-8 at byte 1");    // surrogate U+D800
  CHECK(identity_problem("\xf4\x90\x80\x80") == "is not valid UTF-8 at byte 0"); // U+110000
}

TEST_CASE("identity: control, separator and format characters are refused with their code") {
  CHECK(identity_problem(std::string("dev\0", 4)) == "contains control character 0x00 at byte 3");
  CHECK(identity_problem("dev-1\nINFO forged") == "contains control character 0x0a at byte 5");
  CHECK(identity_problem("\x1b[31mred") == "contains control character 0x1b at byte 0");
  CHECK(identity_problem("dev\x7f") == "contains control character 0x7f at byte 3");
  CHECK(identity_problem("d\xc2\x85") == "contains control character U+0085 at byte 1");
  CHECK(identity_problem("dev\xe2\x80\xa8") == "contains line separator U+2028 at byte 3");
  CHECK(identity_problem("dev\xe2\x80\xa9") == "contains paragraph separator U+2029 at byte 3");
  CHECK(identity_problem("dev-\xe2\x80\xae"
                         "1-ved") == "contains format character U+202E at byte 4");
  CHECK(identity_problem("\xe2\x81\xa6x") == "contains format character U+2066 at byte 0");
  CHECK(identity_problem("a\xe2\x81\xa0") == "contains format character U+2060 at byte 1");
  CHECK(identity_problem("\xef\xbb\xbf"
                         "dev") == "contains format character U+FEFF at byte 0");
  // Neighbours of the refused ranges are fine.
  CHECK(identity_problem("\xc2\xa0") == "");     // U+00A0 no-break space
  CHECK(identity_problem("\xe2\x80\x90") == ""); // U+2010 hyphen
  CHECK(identity_problem("\xe2\x80\xaf") == ""); // U+202F narrow no-break space
}

// A fixed list of ranges let these through; Unicode's properties (ICU) do not.
TEST_CASE(
    "identity: every format (Cf) and default-ignorable code point is refused, by Unicode's properties") {
  CHECK(identity_problem("dev\xd8\x9c-1") ==
        "contains format character U+061C at byte 3"); // Arabic letter mark
  CHECK(identity_problem("dev\xc2\xad"
                         "1") == "contains format character U+00AD at byte 3"); // soft hyphen
  CHECK(identity_problem("dev\xf3\xa0\x80\x81") ==
        "contains format character U+E0001 at byte 3"); // language tag
  CHECK(identity_problem("dev\xe1\xa0\x8e") ==
        "contains format character U+180E at byte 3"); // Mongolian vowel separator
  CHECK(identity_problem("dev\xe2\x81\xaa") ==
        "contains format character U+206A at byte 3"); // inhibit swapping
  // Default-ignorable but not Cf: drawn as nothing all the same.
  CHECK(identity_problem("dev\xcd\x8f") ==
        "contains default-ignorable character U+034F at byte 3"); // combining grapheme joiner (Mn)
  CHECK(identity_problem("\xe3\x85\xa4") ==
        "contains default-ignorable character U+3164 at byte 0"); // Hangul filler
  CHECK(identity_problem("dev\xef\xb8\x8f") ==
        "contains default-ignorable character U+FE0F at byte 3"); // variation selector 16
  // Unassigned code points and noncharacters (Cn).
  CHECK(identity_problem("x\xcd\xb8") == "contains unassigned code point U+0378 at byte 1");
  CHECK(identity_problem("x\xef\xbf\xbe") == "contains unassigned code point U+FFFE at byte 1");
  // Letters and marks that are visible stay fine: combining acute, Devanagari with a vowel sign.
  CHECK(identity_problem("e\xcc\x81") == "");
  CHECK(identity_problem("\xe0\xa4\x95\xe0\xa4\xbf") == "");
}

TEST_CASE("identity: the strict profile allows ASCII letters, digits and -_.: only") {
  using warren::net::identity_profile;
  CHECK(identity_problem("Dev-42_a.b:c", identity_profile::strict) == "");
  CHECK(identity_problem("dev 42", identity_profile::strict) ==
        "contains ' ' (0x20) at byte 3, outside the strict profile (letters, digits, -_.:)");
  CHECK(identity_problem("d\xd0\xb5v", identity_profile::strict) == // Cyrillic е: a look-alike of 'e'
        "contains 0xd0 at byte 1, outside the strict profile (letters, digits, -_.:)");
  CHECK(identity_problem("dev/1", identity_profile::strict) ==
        "contains '/' (0x2f) at byte 3, outside the strict profile (letters, digits, -_.:)");
  // The rules of every profile come first.
  CHECK(identity_problem("", identity_profile::strict) == "is empty");
  CHECK(identity_problem("dev\n", identity_profile::strict) == "contains control character 0x0a at byte 3");
  identity_profile p = identity_profile::unicode;
  CHECK(warren::net::from_string("strict", p));
  CHECK(p == identity_profile::strict);
  CHECK(warren::net::to_string(p) == "strict");
  CHECK_FALSE(warren::net::from_string("ascii", p));
}
