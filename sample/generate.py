#!/usr/bin/env python3
"""Writes the bundled demo sample: a small DynamoDB export of dirty scan records.

Deterministic (seeded), so the committed files only change when this script does.
Covers every field-name variant of docs/contract.md (field names and the dirty cases):
numeric ids past 2^53, counts past 2^64, double-encoded metadata with BOM / NUL / lone
surrogate escapes, control characters, non-NFC captions, every tag container, epoch and
offset timestamps, tombstones, drift attributes, and records beyond repair.

    python3 sample/generate.py   # rewrites sample/export/
"""
import gzip, json, os, random

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "export")
rng = random.Random(20261126)
PLATFORMS = ["tiktok", "TikTok", "instagram", "youtube", "X", "reddit"]
DAYS = ["2025-06-01", "2025-06-02", "2025-06-03"]


def S(v): return {"S": v}
def N(v): return {"N": str(v)}


def stamp(day, i):
    sec = (i * 7919) % 86400
    h, m, s = sec // 3600, sec // 60 % 60, sec % 60
    forms = [f"{day}T{h:02}:{m:02}:{s:02}Z", f"{day}T{h:02}:{m:02}:{s:02}.{i % 1000:03}Z",
             f"{day}T{h:02}:{m:02}:{s:02}.{i % 1000:03}000Z", f"{day}T{h:02}:{m:02}:{s:02}+00:00"]
    return forms[i % len(forms)]


def record(i, content, version, day):
    platform = PLATFORMS[content % len(PLATFORMS)]
    item = {"scanId": S(f"scan-{i:05}"), "datePartition": S(day), "updatedAt": S(stamp(day, i)),
            "platform": S(platform)}
    cid = [S(f"p{content}"), N(9007199254740993 + content), S(f"p{content}")][content % 3]
    item[["contentId", "content_id", "postId"][content % 3]] = cid
    item["contentUrl" if i % 2 else "url"] = S(f"https://example.com/{platform.lower()}/{content}")
    caption = [f"Post {content} v{version}", f"Cafe\u0301 \x07 time {content}\r\n",
               f"  spaced {content} \t ", f"emoji \\ud83d broken {content}"][i % 4]
    item["caption"] = S(caption)
    creator = content % 17
    if i % 2:
        item["creator"] = {"M": {"id": S(f"c{creator}"), "handle": S(f"Creator{creator}"),
                                 "displayName": S(f"Creator {creator}"),
                                 "followers": N(18446744073709551616 + creator)}}
    else:
        item["creatorId"], item["creatorHandle"] = S(f"c{creator}"), S(f"Creator{creator}")
    community = content % 5
    if i % 3:
        item["community"] = {"M": {"id": S(f"g{community}"), "name": S(f"Group {community}")}}
    else:
        item["communityName"] = S(f"Group {community}")
    tags = [f"#Tag{(content + k) % 11}" for k in range(3)]
    item["tags"] = [{"SS": tags}, {"L": [S(t) for t in tags]}, S(json.dumps(tags)),
                    S(", ".join(tags))][i % 4]
    views = 12345678901234567890123 + version
    item["stats"] = {"M": {"views": N(views), "likes": S(str(version * 10)),
                           "comments": S("n/a") if i % 9 == 0 else N(version), "shares": N(0)}}
    item["postedAt"] = [S(f"{day}T00:00:00-05:00"), N(1748736000), N(1748736000000)][i % 3]
    meta = {"lang": "en", "score": 123456789012345678901234567890, "note": "x\u0000y"}
    text = json.dumps(meta)
    item["metadata"] = [S(json.dumps(text)), S("\ufeff" + text), {"M": {"lang": S("en")}},
                        {"NULL": True}, S('{"a": "\\ud83d"}')][i % 5]
    if i % 10 == 0:
        item["sentiment"] = N("0.75")
    if version == 3 and content % 4 == 1:
        item["deleted"] = {"BOOL": True}
    return item


def main():
    lines = []
    i = 0
    for content in range(120):
        for version in range(4 if content % 2 else 2):
            day = DAYS[min(version, 2)]
            lines.append(json.dumps({"Item": record(i, content, version, day)}, ensure_ascii=False))
            i += 1
    # Beyond repair: no content id, no platform, not JSON, not a map.
    lines.append(json.dumps({"Item": {"scanId": S("bad-1"), "datePartition": S(DAYS[0]),
                                      "updatedAt": S(DAYS[0] + "T01:00:00Z"), "platform": S("x")}}))
    lines.append(json.dumps({"Item": {"scanId": S("bad-2"), "datePartition": S(DAYS[1]),
                                      "updatedAt": S(DAYS[1] + "T01:00:00Z"), "postId": S("p9")}}))
    lines.append('{"Item": {"scanId": {"S": "bad-3"}, truncated')
    lines.append('{"Item": ["not", "a", "map"]}')
    rng.shuffle(lines)
    os.makedirs(os.path.join(OUT, "data"), exist_ok=True)
    half = len(lines) // 2
    manifest = []
    for n, chunk in enumerate([lines[:half], lines[half:]]):
        name = f"data/part-{n:02}.json.gz"
        body = ("\n".join(chunk) + "\n").encode("utf-8")
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(gzip.compress(body, mtime=0))
        manifest.append(json.dumps({"itemCount": len(chunk), "dataFileS3Key": name}))
    with open(os.path.join(OUT, "manifest-files.json"), "w") as f:
        f.write("\n".join(manifest) + "\n")
    print(f"wrote {len(lines)} records to {OUT}")


if __name__ == "__main__":
    main()
