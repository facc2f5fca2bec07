"""Sets a camera control through rtcam's "rtcam" data channel (issue 18), as the viewer page's
slider does: lists the controls, sets one to another value in its range, lists again and checks the
driver reports the new value. Used by board/qemu-x86_64/test-daemon-in-vm.sh against vivid.

    python datachannel_controls.py http://127.0.0.1:18080/whep [CONTROL_NAME]

Prints a JSON summary; exit 0 only when the control took the value."""

from __future__ import annotations

import asyncio
import json
import sys

from test_datachannels_aiortc import ChannelPeer


async def main(url: str, name: str) -> dict:
    peer = ChannelPeer(url, {"rtcam": {}})
    try:
        await peer.connect()
        before = await peer.command({"type": "listControls", "id": "before"}, timeout=30)
        control = next((c for c in before.get("controls", []) if c["name"] == name), None)
        if control is None:
            raise SystemExit(f"no control {name!r} among {[c['name'] for c in before.get('controls', [])]}")
        target = control["min"] if control["value"] != control["min"] else control["max"]
        answer = await peer.command({"type": "setControl", "id": "set", "control": control["id"], "value": target}, timeout=30)
        after = await peer.command({"type": "listControls", "id": "after"}, timeout=30)
        now = next(c for c in after["controls"] if c["id"] == control["id"])
        refused = await peer.command({"type": "setControl", "id": "bad", "control": control["id"], "value": control["max"] + 1},
                                     timeout=30)
        return {"control": name, "before": control["value"], "asked": target, "answer": answer, "after": now["value"],
                "outOfRange": refused, "controls": [c["name"] for c in before["controls"]]}
    finally:
        await peer.close()


if __name__ == "__main__":
    result = asyncio.run(asyncio.wait_for(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "Brightness"), 120))
    print(json.dumps(result))
    ok = (result["answer"].get("type") == "controlSet" and result["answer"].get("value") == result["asked"]
          and result["after"] == result["asked"] and result["outOfRange"].get("type") == "error")
    sys.exit(0 if ok else 1)
