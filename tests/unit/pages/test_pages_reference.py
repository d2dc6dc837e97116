"""Pieces of the integrators' reference: comments read from descriptor source info, error reasons found in code,
the callback example recomputed independently, and the Markdown renderer."""

from __future__ import annotations

import hashlib
import hmac
import html

from google.protobuf import descriptor_pb2

from servicekit.web.markdown import render, slug
from servicekit.web.reference import examples
from servicekit.web.reference.errors import error_classes, scan_source
from servicekit.web.reference.protos import read_files


def _location(proto: descriptor_pb2.FileDescriptorProto, path: list[int], comment: str) -> None:
    location = proto.source_code_info.location.add()
    location.path.extend(path)
    location.leading_comments = comment


def test_every_element_gets_its_own_leading_comment_from_the_source_info() -> None:
    proto = descriptor_pb2.FileDescriptorProto(name="dvc/demo/v1/demo.proto", package="dvc.demo.v1", syntax="proto3")
    service = proto.service.add(name="DemoService")
    service.method.add(name="Ping", input_type=".dvc.demo.v1.PingRequest", output_type=".dvc.demo.v1.PingResponse",
                       server_streaming=True)
    request = proto.message_type.add(name="PingRequest")
    request.field.add(name="text", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                      label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    entry = request.nested_type.add(name="LabelsEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING)
    entry.field.add(name="value", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64)
    request.field.add(name="labels", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                      type_name=".dvc.demo.v1.PingRequest.LabelsEntry",
                      label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED)
    proto.message_type.add(name="PingResponse")
    kind = proto.enum_type.add(name="Kind")
    kind.value.add(name="KIND_UNSPECIFIED", number=0)
    kind.value.add(name="KIND_LOUD", number=1)
    # Paths as protoc writes them: file field numbers 6 (service), 4 (message), 5 (enum), 2 (package) ...
    for path, comment in (([2], " The demo API."), ([6, 0], " DemoService pings."), ([6, 0, 2, 0], " Ping echoes."),
                          ([4, 0], " PingRequest asks."), ([4, 0, 2, 0], " The text."), ([4, 0, 2, 1], " Labels."),
                          ([5, 0], " Kind of ping."), ([5, 0, 2, 1], " Shouted.")):
        _location(proto, path, comment)
    parsed = read_files(descriptor_pb2.FileDescriptorSet(file=[proto]))[0]
    assert parsed.comment == "The demo API."
    assert (parsed.services[0].comment, parsed.services[0].methods[0].comment) == ("DemoService pings.", "Ping echoes.")
    assert parsed.services[0].methods[0].server_streaming and parsed.services[0].methods[0].input_type == \
        "dvc.demo.v1.PingRequest"
    message = parsed.messages[0]
    assert message.comment == "PingRequest asks." and message.fields[0].comment == "The text."
    labels = message.fields[1]
    assert (labels.is_map, labels.map_key, labels.type_name, labels.repeated) == (True, "string", "int64", False)
    assert message.messages == []   # the synthetic map entry is not a message of its own
    assert [(value.name, value.comment) for value in parsed.enums[0].values] == [("KIND_UNSPECIFIED", ""),
                                                                                ("KIND_LOUD", "Shouted.")]


def test_error_reasons_are_found_with_their_status_and_message() -> None:
    source = '''
from servicekit.errors import InvalidArgument, NotFound
from servicekit import errors

def find(item_id, code):
    if not item_id:
        raise InvalidArgument.single("item_id", "is required", reason="ITEM_ID_MISSING")
    if code == 1:
        raise NotFound(f"no item {item_id!r}", reason="ITEM_NOT_FOUND")
    if code == 2:
        raise errors.Conflict("changed " + "meanwhile", reason=f"ITEM_{code}_CHANGED")
    raise NotFound("no reason given")
'''
    found = scan_source(source, "demo.py")
    assert ("ITEM_ID_MISSING", "INVALID_ARGUMENT", "item_id: is required") in found
    assert ("ITEM_NOT_FOUND", "NOT_FOUND", "no item …") in found
    assert ("ITEM_…_CHANGED", "ABORTED", "changed meanwhile") in found
    assert len(found) == 3
    assert error_classes()["Unauthenticated"] == "UNAUTHENTICATED"


def test_the_callback_example_is_what_an_hmac_of_t_dot_body_gives() -> None:
    example = examples.signature_example()
    expected = hmac.new(example.secret.encode(), f"{example.timestamp}.{example.body}".encode(),
                        hashlib.sha256).hexdigest()
    assert example.header == f"t={example.timestamp},v1={expected}"
    rotated = hmac.new(example.next_secret.encode(), f"{example.timestamp}.{example.body}".encode(),
                       hashlib.sha256).hexdigest()
    assert example.rotation_header == f"t={example.timestamp},v1={rotated},v1={expected}"
    assert '"type":"payment.succeeded"' in example.body.replace(" ", "")


def test_markdown_renders_the_documents_constructs_and_escapes_html() -> None:
    document = render("""# Title — Tiêu đề

Text with `code | pipe`, **bold**, *em* and [the standard](bank-connection-standard.md).

| a | b |
|---|--:|
| `x|y` | 2 |

- first
  continued
- second
  1. nested

```json
{"a": "<b>"}
```

<script>alert(1)</script>
""", link=lambda target: target.replace(".md", ".html"))
    html = document.html
    assert '<h1 id="title-tieu-de">Title — Tiêu đề</h1>' in html
    assert "<code>code | pipe</code>" in html and "<strong>bold</strong>" in html and "<em>em</em>" in html
    assert '<a href="bank-connection-standard.html">the standard</a>' in html
    assert '<td><code>x|y</code></td><td class="align-right">2</td>' in html
    assert "<li>first continued</li>" in html and "<ol><li>nested</li></ol>" in html
    assert '<pre><code class="language-json">{&quot;a&quot;: &quot;&lt;b&gt;&quot;}</code></pre>' in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert document.title == "Title — Tiêu đề" and render("## The `wallet_service` *API*").headings[0].text == \
        "The wallet_service API" and slug("Đối soát / Reconciliation") == "doi-soat-reconciliation"


def test_markdown_links_go_only_to_web_addresses_relative_paths_and_fragments() -> None:
    broken_out = render('<https://x/"onmouseover="alert(1)>').html
    assert broken_out == '<p><a href="https://x/&quot;onmouseover=&quot;alert(1)">https://x/"onmouseover="alert(1)</a></p>'
    for target in ("javascript:alert(1)", "JavaScript:alert(1)", "data:text/html,<b>", "vbscript:x", "//evil.example/"):
        rendered = render(f"[x]({target})").html
        assert "<a" not in rendered and rendered == f"<p>[x]({html.escape(target, quote=False)})</p>", target
    assert "<a" not in render(r"[x](java\-script:alert(1))").html  # judged with the escaped "-" back in place
    assert "<a" not in render("[x](https://docs.example/)", link=lambda target: "javascript:alert(1)").html
    assert render("[API](https://dichvucong.gov.vn/p?a=1&b=2) [up](../README.md) [here](#section-2) "
                  "<https://example.vn/docs>").html == (
        '<p><a href="https://dichvucong.gov.vn/p?a=1&amp;b=2">API</a> <a href="../README.md">up</a> '
        '<a href="#section-2">here</a> <a href="https://example.vn/docs">https://example.vn/docs</a></p>')
