// qemu-img prints JSON in QDict bucket order; these orders were captured
// from Debian's qemu-img 7.2 (info --output=json, check --output=json).
#include <gtest/gtest.h>

#include "tools/common/qjson.h"

using kiln::tools::Json;
using kiln::tools::qdict_order;
using kiln::tools::qjson_pretty;

TEST(QJson, ImageInfoKeysFollowQemuOrder)
{
    Json info = Json::object();
    for (const char* key : {"filename", "format", "dirty-flag", "actual-size", "virtual-size", "cluster-size",
                            "backing-filename", "full-backing-filename", "backing-filename-format",
                            "format-specific"})
        info[key] = 0;
    std::vector<std::string> expected = {"backing-filename-format", "virtual-size", "filename", "cluster-size",
                                         "format", "actual-size", "format-specific", "full-backing-filename",
                                         "backing-filename", "dirty-flag"};
    EXPECT_EQ(qdict_order(info), expected);
}

TEST(QJson, CheckKeysFollowQemuOrder)
{
    Json check = Json::object();
    for (const char* key : {"filename", "format", "check-errors", "image-end-offset", "total-clusters",
                            "allocated-clusters"})
        check[key] = 0;
    std::vector<std::string> expected = {"image-end-offset", "total-clusters", "check-errors", "allocated-clusters",
                                         "filename", "format"};
    EXPECT_EQ(qdict_order(check), expected);
}

TEST(QJson, PrettyLayoutMatchesQemu)
{
    Json v = Json::object();
    v["type"] = "qcow2";
    Json data = Json::object();
    data["compat"] = "1.1";
    data["corrupt"] = false;
    v["data"] = data;
    EXPECT_EQ(qjson_pretty(v), "{\n    \"type\": \"qcow2\",\n    \"data\": {\n        \"compat\": \"1.1\",\n"
                               "        \"corrupt\": false\n    }\n}");
    EXPECT_EQ(qjson_pretty(Json::object()), "{\n}");
    EXPECT_EQ(qjson_pretty(Json::array()), "[\n]");
    Json list = Json::array({1, 2});
    EXPECT_EQ(qjson_pretty(list), "[\n    1,\n    2\n]");
}

TEST(QJson, StringsAreEscaped)
{
    EXPECT_EQ(qjson_pretty(Json("a\"b\\c\n")), "\"a\\\"b\\\\c\\n\"");
}
