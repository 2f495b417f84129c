// The thread list in its two forms: `qfThreadInfo` (ids only) and the `qXfer:threads:read`
// document, which also carries each vCPU's name and extra text so `info threads` needs no
// per-thread round trips.

enum ThreadList {
    /// `m1,2,3` (hex ids), or `l` when there are none.
    static func firstReply(_ threads: [ThreadID]) -> [UInt8] {
        guard !threads.isEmpty else { return [UInt8(ascii: "l")] }
        var out: [UInt8] = [UInt8(ascii: "m")]
        for (i, thread) in threads.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            Reply.appendThreadID(thread, minimumDigits: 1, to: &out)
        }
        return out
    }

    /// `<threads><thread id="1" name="vCPU 0">extra</thread>...</threads>`, ids in hex.
    static func xml(for target: any Target) -> [UInt8] {
        var xml = "<?xml version=\"1.0\"?>\n<threads>\n"
        for thread in target.threads {
            var id: [UInt8] = []
            Reply.appendThreadID(thread, minimumDigits: 1, to: &id)
            xml += "  <thread id=\"\(String(decoding: id, as: UTF8.self))\""
            xml += " name=\"\(escape(target.threadName(thread)))\">"
            xml += escape(target.threadExtraInfo(thread))
            xml += "</thread>\n"
        }
        xml += "</threads>\n"
        return Array(xml.utf8)
    }

    /// XML character escaping; names and extra text come from the VMM and may hold anything.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for c in text.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            // XML 1.0 forbids most control characters even as references.
            case _ where c.value < 0x20 && c != "\t" && c != "\n" && c != "\r": out += "?"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }
}
