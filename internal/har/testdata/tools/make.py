# Run: cd internal/har && /usr/bin/python3 testdata/tools/make.py
# Generates internal/har/testdata/tools/*.har: one visit of a Django-style
# shop (a login with its CSRF token, a page with an XHR carrying
# X-CSRFToken, an order page) as each tool writes HAR, following their
# documented formats. Run from internal/har.
import json, base64, copy, datetime, os

ORIGIN = "https://shop.example.test"
T0 = datetime.datetime(2026, 11, 20, 9, 30, 0, 0, tzinfo=datetime.timezone.utc)
CSRF1 = "Xq7pL2mN9vB4cR8tY1wE5uI3oP6aS0dF"      # csrftoken cookie before the login
MASKED1 = "kJ3hG7fD2sA9qW4eR8tY6uI1oP5zX0cVbN3mL7kJ2hG6fD4sA8qW1eR9tY5uI7oP"  # form token
CSRF2 = "Zt5yU8iO2pA6sD9fG3hJ7kL1zX4cV0bN"      # rotated at login
SESSION = "n8x2k4m6p0q3r5t7v9w1y3z5a7c9e1g3"
PHOTO = base64.b64encode(bytes(range(256)) * 4).decode()

LOGIN_PAGE = f'''<!DOCTYPE html><html><head><title>Sign in</title>
<link rel="stylesheet" href="/static/app.css"><link rel="icon" href="/favicon.ico"></head>
<body><form method="post" action="/accounts/login/">
<input type="hidden" name="csrfmiddlewaretoken" value="{MASKED1}">
<input type="text" name="login" autofocus> <input type="password" name="password">
<input type="hidden" name="next" value="/">
<button type="submit">Sign in</button></form></body></html>'''
HOME = '''<!DOCTYPE html><html><head><title>Orders</title></head><body>
<h1>Your orders</h1><ul><li><a href="/orders/1042/">Order 1042</a></li><li><a href="/orders/1043/">Order 1043</a></li></ul>
<script>fetch("/api/cart/", {headers: {"X-CSRFToken": getCookie("csrftoken")}})</script></body></html>'''
CART = '{"items": [{"sku": "A-1", "qty": 2}], "total": "19.90"}'
ORDER = '<!DOCTYPE html><html><head><title>Order 1042</title></head><body><h1>Order 1042</h1><p>2 items</p></body></html>'

def at(ms):
    return T0 + datetime.timedelta(milliseconds=ms)

def nv(pairs):
    return [{"name": k, "value": v} for k, v in pairs]

def doc_headers(extra=()):
    return [("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            ("Sec-Fetch-Dest", "document"), ("Sec-Fetch-Mode", "navigate"), ("Sec-Fetch-Site", "same-origin"),
            ("User-Agent", "Mozilla/5.0")] + list(extra)

def flow():
    """The visit, tool-neutral: (ms, kind, method, url, req headers, cookies sent, body, status, resp headers, mime, text, b64)."""
    login_body = f"csrfmiddlewaretoken={MASKED1}&login=alice%40example.test&password=Tr0ub4dor%263&next=%2F"
    return [
        dict(ms=0, type="document", method="GET", url=ORIGIN + "/", req=doc_headers(), cookies=[],
             status=302, resp=[("Location", "/accounts/login/?next=/"), ("Content-Type", "text/html; charset=utf-8")], mime="text/html", text=""),
        dict(ms=80, type="document", method="GET", url=ORIGIN + "/accounts/login/?next=/", req=doc_headers(), cookies=[],
             status=200, resp=[("Content-Type", "text/html; charset=utf-8"), ("Set-Cookie", f"csrftoken={CSRF1}; expires=Fri, 19 Nov 2027 09:30:00 GMT; Max-Age=31449600; Path=/; SameSite=Lax")],
             mime="text/html", text=LOGIN_PAGE),
        dict(ms=150, type="stylesheet", method="GET", url=ORIGIN + "/static/app.css", req=[("Accept", "text/css,*/*;q=0.1"), ("Sec-Fetch-Dest", "style")], cookies=[("csrftoken", CSRF1)],
             status=200, resp=[("Content-Type", "text/css")], mime="text/css", text="body{margin:0}"),
        dict(ms=160, type="stylesheet", method="GET", url="https://fonts.googleapis.com/css2?family=Inter", req=[("Accept", "text/css,*/*;q=0.1"), ("Sec-Fetch-Dest", "style")], cookies=[],
             status=200, resp=[("Content-Type", "text/css")], mime="text/css", text="@font-face{}"),
        dict(ms=170, type="image", method="GET", url=ORIGIN + "/favicon.ico", req=[("Accept", "image/avif,image/webp,*/*"), ("Sec-Fetch-Dest", "image")], cookies=[("csrftoken", CSRF1)],
             status=200, resp=[("Content-Type", "image/x-icon")], mime="image/x-icon", text=PHOTO, b64=True),
        dict(ms=4170, type="document", method="POST", url=ORIGIN + "/accounts/login/", req=doc_headers([("Content-Type", "application/x-www-form-urlencoded"), ("Origin", ORIGIN)]),
             cookies=[("csrftoken", CSRF1)], body=("application/x-www-form-urlencoded", login_body),
             status=302, resp=[("Location", "/"), ("Set-Cookie", f"csrftoken={CSRF2}; Path=/; SameSite=Lax"), ("Set-Cookie", f"sessionid={SESSION}; HttpOnly; Path=/; SameSite=Lax")],
             mime="text/html", text=""),
        dict(ms=4260, type="document", method="GET", url=ORIGIN + "/", req=doc_headers(), cookies=[("csrftoken", CSRF2), ("sessionid", SESSION)],
             status=200, resp=[("Content-Type", "text/html; charset=utf-8")], mime="text/html", text=HOME),
        dict(ms=4400, type="xhr", method="GET", url=ORIGIN + "/api/cart/", req=[("Accept", "application/json"), ("X-CSRFToken", CSRF2), ("Sec-Fetch-Dest", "empty"), ("Sec-Fetch-Mode", "cors")],
             cookies=[("csrftoken", CSRF2), ("sessionid", SESSION)], status=200, resp=[("Content-Type", "application/json")], mime="application/json", text=CART),
        dict(ms=4450, type="ping", method="POST", url="https://www.google-analytics.com/g/collect?v=2&tid=G-XYZ&_p=1700000000", req=[("Content-Type", "text/plain;charset=UTF-8"), ("Sec-Fetch-Dest", "empty")], cookies=[],
             body=("text/plain;charset=UTF-8", ""), status=204, resp=[], mime="", text=""),
        dict(ms=7450, type="document", method="GET", url=ORIGIN + "/orders/1042/", req=doc_headers(), cookies=[("csrftoken", CSRF2), ("sessionid", SESSION)],
             status=200, resp=[("Content-Type", "text/html; charset=utf-8")], mime="text/html", text=ORDER),
        dict(ms=9450, type="document", method="GET", url=ORIGIN + "/accounts/logout/", req=doc_headers(), cookies=[("csrftoken", CSRF2), ("sessionid", SESSION)],
             status=302, resp=[("Location", "/accounts/login/")], mime="text/html", text=""),
    ]

def cookie_header(cookies):
    return "; ".join(f"{k}={v}" for k, v in cookies)

def query(url):
    from urllib.parse import urlsplit, parse_qsl
    return [{"name": k, "value": v} for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True)]

def entry(f, stamp, h2=False, tool=""):
    req_headers = list(f["req"])
    if f["cookies"]:
        req_headers.append(("Cookie", cookie_header(f["cookies"])))
    if h2:
        from urllib.parse import urlsplit
        u = urlsplit(f["url"])
        req_headers = [(":method", f["method"]), (":authority", u.netloc), (":scheme", "https"), (":path", u.path + ("?" + u.query if u.query else ""))] + [(k.lower(), v) for k, v in req_headers]
    e = {
        "startedDateTime": stamp(at(f["ms"])),
        "time": 42.5,
        "request": {"method": f["method"], "url": f["url"], "httpVersion": "HTTP/2" if h2 else "HTTP/1.1",
                    "headers": nv(req_headers), "queryString": query(f["url"]),
                    "cookies": [{"name": k, "value": v} for k, v in f["cookies"]], "headersSize": -1, "bodySize": 0},
        "response": {"status": f["status"], "statusText": {200: "OK", 302: "Found", 204: "No Content"}[f["status"]],
                     "httpVersion": "HTTP/2" if h2 else "HTTP/1.1", "headers": nv(f["resp"]), "cookies": [],
                     "content": {"size": len(f["text"]), "mimeType": f["mime"]}, "redirectURL": dict(f["resp"]).get("Location", ""),
                     "headersSize": -1, "bodySize": len(f["text"])},
        "cache": {},
        "timings": {"blocked": -1, "dns": -1, "connect": -1, "ssl": -1, "send": 0.2, "wait": 40, "receive": 2.3},
    }
    if "body" in f:
        mt, text = f["body"]
        e["request"]["postData"] = {"mimeType": mt, "text": text}
        e["request"]["bodySize"] = len(text)
    if f["text"]:
        e["response"]["content"]["text"] = f["text"]
        if f.get("b64"):
            e["response"]["content"]["encoding"] = "base64"
    return e

def z(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"

def offset(t, hours=1):
    tz = datetime.timezone(datetime.timedelta(hours=hours))
    lt = t.astimezone(tz)
    return lt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{lt.microsecond // 1000:03d}" + lt.strftime("%z")[:3] + ":" + lt.strftime("%z")[3:]

def seven(t):
    tz = datetime.timezone(datetime.timedelta(hours=1))
    lt = t.astimezone(tz)
    return lt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{lt.microsecond:06d}0" + "+01:00"

def write(name, doc):
    os.makedirs("testdata/tools", exist_ok=True)
    with open(f"testdata/tools/{name}.har", "w") as fh:
        json.dump(doc, fh, indent=2, ensure_ascii=False)
        fh.write("\n")

# Chromium: _resourceType, _initiator, HTTP/2 pseudo-headers, a websocket,
# the favicon base64, Set-Cookie lines as separate headers.
def chromium():
    es = []
    for i, f in enumerate(flow()):
        e = entry(f, z, h2=True)
        e["_resourceType"] = f["type"]
        e["_initiator"] = {"type": "other"} if f["type"] == "document" else ({"type": "script", "url": ORIGIN + "/"} if f["type"] in ("xhr", "ping") else {"type": "parser", "url": ORIGIN + "/accounts/login/?next=/"})
        e["_priority"] = "VeryHigh" if f["type"] == "document" else "High"
        e["pageref"] = "page_1" if f["ms"] < 4000 else "page_2"
        e["serverIPAddress"] = "192.0.2.10"
        e["connection"] = "443"
        e["_transferSize"] = len(f["text"]) + 300
        es.append(e)
    ws = entry(dict(ms=4500, type="websocket", method="GET", url="wss://shop.example.test/ws/notify/", req=[("Upgrade", "websocket"), ("Connection", "Upgrade")], cookies=[],
                    status=200, resp=[], mime="", text=""), z)
    ws["response"]["status"] = 101
    ws["response"]["statusText"] = "Switching Protocols"
    ws["_resourceType"] = "websocket"
    ws["_webSocketMessages"] = [{"type": "receive", "time": 1763631000.5, "opcode": 1, "data": "{\"hello\": 1}"}]
    es.append(ws)
    es.sort(key=lambda e: e["startedDateTime"])
    write("chromium", {"log": {"version": "1.2", "creator": {"name": "WebInspector", "version": "537.36"},
        "pages": [{"startedDateTime": z(at(0)), "id": "page_1", "title": ORIGIN + "/accounts/login/?next=/", "pageTimings": {"onContentLoad": 120.5, "onLoad": 180.2}},
                  {"startedDateTime": z(at(4170)), "id": "page_2", "title": ORIGIN + "/", "pageTimings": {"onContentLoad": -1, "onLoad": -1}}],
        "entries": es}})

# Firefox: no _resourceType; times with the local offset; a preflight
# OPTIONS to an API host; cookies with expires.
def firefox():
    es = []
    for f in flow():
        e = entry(f, lambda t: offset(t, 1))
        e["pageref"] = "page_1"
        e["response"]["cookies"] = []
        for k, v in f["resp"]:
            if k == "Set-Cookie":
                name, val = v.split(";")[0].split("=", 1)
                e["response"]["cookies"].append({"name": name, "value": val, "path": "/", "httpOnly": "HttpOnly" in v, "expires": "2027-11-19T09:30:00.000Z"})
        es.append(e)
    pre = entry(dict(ms=4420, type="", method="OPTIONS", url=ORIGIN + "/api/cart/", req=[("Access-Control-Request-Method", "GET"), ("Access-Control-Request-Headers", "x-csrftoken"), ("Origin", "https://www.shop.example.test")], cookies=[],
                     status=204, resp=[("Access-Control-Allow-Origin", "https://www.shop.example.test")], mime="", text=""), lambda t: offset(t, 1))
    es.append(pre)
    write("firefox", {"log": {"version": "1.2", "creator": {"name": "Firefox", "version": "121.0"}, "browser": {"name": "Firefox", "version": "121.0"},
        "pages": [{"startedDateTime": offset(at(0)), "id": "page_1", "title": "Orders", "pageTimings": {"onContentLoad": 210, "onLoad": 330}}], "entries": es}})

# Safari: Web Inspector's creator, _fetchType, sizes of 0 for cached,
# the favicon and a service worker script.
def safari():
    es = []
    for f in flow():
        e = entry(f, z)
        e["_fetchType"] = "Network Load"
        e["_priority"] = "medium"
        e["pageref"] = "page_0"
        es.append(e)
    sw = entry(dict(ms=4300, type="", method="GET", url=ORIGIN + "/sw.js", req=[("Service-Worker", "script"), ("Accept", "*/*")], cookies=[],
                    status=200, resp=[("Content-Type", "application/javascript")], mime="application/javascript", text="self.addEventListener('fetch',()=>{})"), z)
    es.append(sw)
    write("safari", {"log": {"version": "1.2", "creator": {"name": "WebKit Web Inspector", "version": "1.0"},
        "pages": [{"startedDateTime": z(at(0)), "id": "page_0", "title": ORIGIN + "/", "pageTimings": {"onContentLoad": 150, "onLoad": 200}}], "entries": es}})

# mitmproxy (savehar / har_dump): entries in the order flows completed,
# not started; the login form's params listed; bodies base64 when binary.
def mitmproxy():
    es = []
    for f in flow():
        e = entry(f, lambda t: t.isoformat())
        if "body" in f and f["body"][0].startswith("application/x-www-form-urlencoded"):
            from urllib.parse import parse_qsl
            e["request"]["postData"]["params"] = [{"name": k, "value": v} for k, v in parse_qsl(f["body"][1])]
        e["serverIPAddress"] = "192.0.2.10"
        es.append(e)
    # Completed order: the page's XHR finished before the page's favicon.
    es[2], es[7] = es[7], es[2]
    write("mitmproxy", {"log": {"version": "1.2", "creator": {"name": "mitmproxy", "version": "10.1.5", "comment": "mitmproxy version 10.1.5"}, "pages": [], "entries": es}})

# Charles: its creator, -1 for every unknown timing and size, null
# expires, _charlesStatus; a multipart upload after the login.
def charles():
    es = []
    for f in flow():
        e = entry(f, lambda t: offset(t, 0).replace("+00:00", "Z"))
        e["time"] = -1 if f["type"] == "image" else e["time"]
        e["timings"] = {"blocked": -1, "dns": -1, "connect": -1, "ssl": -1, "send": -1, "wait": -1, "receive": -1}
        e["_charlesStatus"] = "COMPLETE"
        e["response"]["content"]["size"] = -1 if f["type"] == "image" else e["response"]["content"]["size"]
        es.append(e)
    mp = "--XYZ\r\nContent-Disposition: form-data; name=\"csrfmiddlewaretoken\"\r\n\r\n" + MASKED1 + "\r\n--XYZ\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\nPNGDATA\r\n--XYZ--\r\n"
    up = entry(dict(ms=8450, type="document", method="POST", url=ORIGIN + "/orders/1042/photo/", req=doc_headers([("Content-Type", "multipart/form-data; boundary=XYZ")]),
                    cookies=[("csrftoken", CSRF2), ("sessionid", SESSION)], body=("multipart/form-data; boundary=XYZ", mp),
                    status=302, resp=[("Location", "/orders/1042/")], mime="text/html", text=""), lambda t: offset(t, 0).replace("+00:00", "Z"))
    es.append(up)
    write("charles", {"log": {"version": "1.2", "creator": {"name": "Charles Proxy", "version": "4.6.4"}, "entries": es}})

# Fiddler: a byte-order mark, seven fractional digits with an offset,
# comments, postData params empty; a JSON login to an API returning a
# Bearer token, used by the next request.
def fiddler():
    es = []
    api = [
        dict(ms=0, type="document", method="GET", url=ORIGIN + "/app/", req=doc_headers(), cookies=[], status=200,
             resp=[("Content-Type", "text/html")], mime="text/html", text="<!DOCTYPE html><html><body><div id=app></div><script src=/static/app.js></script></body></html>"),
        dict(ms=60, type="script", method="GET", url=ORIGIN + "/static/app.js", req=[("Accept", "*/*")], cookies=[], status=200,
             resp=[("Content-Type", "application/javascript")], mime="application/javascript", text="fetch('/api/login')"),
        dict(ms=3000, type="xhr", method="POST", url=ORIGIN + "/api/login", req=[("Accept", "application/json"), ("Content-Type", "application/json"), ("Sec-Fetch-Dest", "empty"), ("Sec-Fetch-Mode", "cors")], cookies=[],
             body=("application/json", '{"email": "alice@example.test", "password": "Tr0ub4dor&3", "remember": true}'),
             status=200, resp=[("Content-Type", "application/json")], mime="application/json",
             text='{"user": {"id": 7, "email": "alice@example.test"}, "access_token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI3In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ", "expires_in": 3600}'),
        dict(ms=3100, type="xhr", method="GET", url=ORIGIN + "/api/orders?page=1&_=1795167003100", req=[("Accept", "application/json"), ("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI3In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"), ("Sec-Fetch-Dest", "empty"), ("Sec-Fetch-Mode", "cors")], cookies=[],
             status=200, resp=[("Content-Type", "application/json")], mime="application/json", text='{"orders": [{"id": 1042, "total": "19.90"}, {"id": 1043, "total": "5.00"}]}'),
        dict(ms=6100, type="xhr", method="GET", url=ORIGIN + "/api/orders/1042", req=[("Accept", "application/json"), ("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI3In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"), ("X-Request-Id", "3f2b8c1e-9d4a-4e7b-8a6f-2c1d0e9b7a54"), ("Sec-Fetch-Dest", "empty"), ("Sec-Fetch-Mode", "cors")], cookies=[],
             status=200, resp=[("Content-Type", "application/json")], mime="application/json", text='{"id": 1042, "items": 2}'),
    ]
    for f in api:
        e = entry(f, seven)
        e["comment"] = ""
        if "body" in e["request"].get("postData", {}) or "postData" in e["request"]:
            e["request"]["postData"]["params"] = []
        e["response"]["content"]["compression"] = 0
        es.append(e)
    data = json.dumps({"log": {"version": "1.2", "creator": {"name": "Fiddler", "version": "5.0.20204.45441", "comment": "http://www.telerik.com/fiddler"}, "comment": "exported", "entries": es}}, indent=2)
    os.makedirs("testdata/tools", exist_ok=True)
    with open("testdata/tools/fiddler.har", "w", encoding="utf-8-sig") as fh:
        fh.write(data + "\n")

# Proxyman: its creator, the login as a form, base64 text bodies.
def proxyman():
    es = []
    for f in flow():
        e = entry(f, z)
        c = e["response"]["content"]
        if c.get("text") and not c.get("encoding"):
            c["text"] = base64.b64encode(c["text"].encode()).decode()
            c["encoding"] = "base64"
        es.append(e)
    write("proxyman", {"log": {"version": "1.2", "creator": {"name": "Proxyman", "version": "4.14.0"}, "entries": es}})

chromium(); firefox(); safari(); mitmproxy(); charles(); fiddler(); proxyman()
