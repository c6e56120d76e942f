#include <numeric>
#include <vector>

#include <gtest/gtest.h>

#include "block/qiov.h"

using namespace kiln::block;

TEST(QIov, AddMergesContiguousSegments)
{
    std::vector<uint8_t> buf(100);
    QIov q;
    q.add(buf.data(), 10);
    q.add(buf.data() + 10, 20);
    q.add(buf.data() + 50, 10);
    q.add(buf.data(), 0);
    EXPECT_EQ(q.count(), 2);
    EXPECT_EQ(q.size(), 40u);
}

TEST(QIov, SliceCopyFillAndZero)
{
    std::vector<uint8_t> a(8), b(8);
    QIov q;
    q.add(a.data(), a.size());
    q.add(b.data(), b.size());
    std::vector<uint8_t> src(16);
    std::iota(src.begin(), src.end(), 1);
    q.copy_in(0, src.data(), 16);
    EXPECT_EQ(a[0], 1);
    EXPECT_EQ(b[7], 16);
    QIov mid = q.slice(6, 4);
    EXPECT_EQ(mid.count(), 2);
    EXPECT_EQ(mid.size(), 4u);
    std::vector<uint8_t> out(4);
    mid.copy_out(0, out.data(), 4);
    EXPECT_EQ(out, (std::vector<uint8_t> { 7, 8, 9, 10 }));
    EXPECT_FALSE(q.is_zero());
    q.fill(4, 0, 8);
    EXPECT_TRUE(q.is_zero(4, 8));
    EXPECT_FALSE(q.is_zero(3, 2));
    EXPECT_EQ(b[4], 13);
}

TEST(QIov, BufferIsZeroAtEveryAlignment)
{
    std::vector<uint8_t> buf(300, 0);
    for (size_t start = 0; start < 9; ++start)
        for (size_t len : { 0, 1, 7, 8, 33, 200 })
            EXPECT_TRUE(buffer_is_zero(buf.data() + start, len));
    for (size_t pos = 0; pos < 64; ++pos) {
        buf[pos + 3] = 1;
        EXPECT_FALSE(buffer_is_zero(buf.data() + 3, 64)) << pos;
        buf[pos + 3] = 0;
    }
}
