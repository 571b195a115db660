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
  CHECK(identity_problem("dev\xe2\x80\xa9") == "contains line separator U+2029 at byte 3");
  CHECK(identity_problem("dev-\xe2\x80\xae"
                         "1-ved") == "contains invisible or bidirectional format character U+202E at byte 4");
  CHECK(identity_problem("\xe2\x81\xa6x") ==
        "contains invisible or bidirectional format character U+2066 at byte 0");
  CHECK(identity_problem("a\xe2\x81\xa0") ==
        "contains invisible or bidirectional format character U+2060 at byte 1");
  CHECK(identity_problem("\xef\xbb\xbf"
                         "dev") == "contains invisible or bidirectional format character U+FEFF at byte 0");
  // Neighbours of the refused ranges are fine.
  CHECK(identity_problem("\xc2\xa0") == "");     // U+00A0 no-break space
  CHECK(identity_problem("\xe2\x80\x90") == ""); // U+2010 hyphen
  CHECK(identity_problem("\xe2\x80\xaf") == ""); // U+202F narrow no-break space
}
