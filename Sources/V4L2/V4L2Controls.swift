internal import CV4L2
import Glibc

/// A user-facing camera control (V4L2 user and camera classes: brightness, contrast, exposure,
/// focus, zoom, pan/tilt...), as VIDIOC_QUERYCTRL reports it, with its current value.
public struct V4L2ControlInfo: Equatable, Sendable {
    public enum Kind: String, Equatable, Sendable {
        case integer, boolean, menu, integerMenu, button
    }

    public var id: UInt32
    public var name: String
    public var kind: Kind
    public var minimum: Int64
    public var maximum: Int64
    public var step: Int64
    public var defaultValue: Int64
    /// nil for a button (write-only).
    public var value: Int64?
    public var readOnly: Bool
    /// Menu entries (index → name) of a menu control; empty otherwise.
    public var menu: [(index: Int64, name: String)]

    public init(id: UInt32, name: String, kind: Kind, minimum: Int64, maximum: Int64, step: Int64, defaultValue: Int64,
                value: Int64?, readOnly: Bool, menu: [(index: Int64, name: String)]) {
        self.id = id
        self.name = name
        self.kind = kind
        self.minimum = minimum
        self.maximum = maximum
        self.step = step
        self.defaultValue = defaultValue
        self.value = value
        self.readOnly = readOnly
        self.menu = menu
    }

    public static func == (lhs: V4L2ControlInfo, rhs: V4L2ControlInfo) -> Bool {
        lhs.id == rhs.id && lhs.name == rhs.name && lhs.kind == rhs.kind && lhs.minimum == rhs.minimum
            && lhs.maximum == rhs.maximum && lhs.step == rhs.step && lhs.defaultValue == rhs.defaultValue
            && lhs.value == rhs.value && lhs.readOnly == rhs.readOnly
            && lhs.menu.map(\.index) == rhs.menu.map(\.index) && lhs.menu.map(\.name) == rhs.menu.map(\.name)
    }

    /// Whether `value` is one the control takes (in range, on a step).
    public func accepts(_ value: Int64) -> Bool {
        guard !readOnly, value >= minimum, value <= maximum else { return false }
        return step <= 1 || (value - minimum) % step == 0
    }
}

/// The controls of a V4L2 device, on a file descriptor of its own (V4L2 lets any open file handle
/// set controls, so this never touches the capture's handle, which its media thread owns). Opened
/// for one request and closed after it. Only the user (V4L2_CTRL_CLASS_USER) and camera
/// (V4L2_CTRL_CLASS_CAMERA) classes are listed: the codec and driver-private classes are not a
/// viewer's business.
public final class V4L2ControlDevice {
    /// V4L2_CTRL_FLAG_NEXT_CTRL, _DISABLED, _READ_ONLY, _INACTIVE are plain numbers in videodev2.h.
    static let nextControl: UInt32 = 0x8000_0000
    static let disabledFlag: UInt32 = 0x0001
    static let readOnlyFlag: UInt32 = 0x0004
    static let userClass: UInt32 = 0x0098_0000
    static let cameraClass: UInt32 = 0x009A_0000

    private let fileDescriptor: Int32

    public init(path: String) throws(V4L2Error) {
        while true {
            let fd = Glibc.open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC)
            if fd >= 0 { fileDescriptor = fd; return }
            let code = errno
            if code == EINTR { continue }
            if V4L2Error.isDeviceGone(code) { throw .deviceGone }
            throw .open(path: path, errno: code)
        }
    }

    deinit { _ = Glibc.close(fileDescriptor) }

    private func ioctl<Argument>(_ request: UInt, _ name: String, _ argument: inout Argument) throws(V4L2Error) {
        try v4l2Ioctl(fileDescriptor, request, name, &argument)
    }

    /// Every enabled user and camera control, in the driver's order, with its value (VIDIOC_QUERYCTRL
    /// with V4L2_CTRL_FLAG_NEXT_CTRL, then VIDIOC_G_CTRL; menus through VIDIOC_QUERYMENU).
    public func controls() throws(V4L2Error) -> [V4L2ControlInfo] {
        var found: [V4L2ControlInfo] = []
        var id: UInt32 = 0
        for _ in 0..<1024 {   // a driver lists a few dozen; the bound guards against one that loops
            var query = v4l2_queryctrl()
            query.id = id | Self.nextControl
            do {
                try ioctl(cv4l2_VIDIOC_QUERYCTRL, "VIDIOC_QUERYCTRL", &query)
            } catch {
                if case let .ioctl(_, code) = error, code == EINVAL { break }   // no more controls
                throw error
            }
            guard query.id > id || id == 0 else { break }
            id = query.id
            let controlClass = query.id & 0x0FFF_0000
            guard controlClass == Self.userClass || controlClass == Self.cameraClass,
                  query.flags & Self.disabledFlag == 0 else { continue }
            let kind: V4L2ControlInfo.Kind
            switch query.type {
            case V4L2_CTRL_TYPE_INTEGER.rawValue: kind = .integer
            case V4L2_CTRL_TYPE_BOOLEAN.rawValue: kind = .boolean
            case V4L2_CTRL_TYPE_MENU.rawValue: kind = .menu
            case V4L2_CTRL_TYPE_INTEGER_MENU.rawValue: kind = .integerMenu
            case V4L2_CTRL_TYPE_BUTTON.rawValue: kind = .button
            default: continue   // 64-bit, string, compound controls: not offered
            }
            var info = V4L2ControlInfo(
                id: query.id, name: Self.string(query.name), kind: kind, minimum: Int64(query.minimum),
                maximum: Int64(query.maximum), step: Int64(query.step), defaultValue: Int64(query.default_value),
                value: nil, readOnly: query.flags & Self.readOnlyFlag != 0, menu: [])
            if kind != .button { info.value = try? value(of: query.id) }
            if kind == .menu || kind == .integerMenu, query.minimum <= query.maximum, query.maximum - query.minimum < 64 {
                for index in query.minimum...query.maximum {
                    var item = v4l2_querymenu()
                    item.id = query.id
                    item.index = UInt32(index)
                    guard (try? ioctl(cv4l2_VIDIOC_QUERYMENU, "VIDIOC_QUERYMENU", &item)) != nil else { continue }
                    let name = kind == .menu ? Self.string(item.name) : String(item.value)
                    info.menu.append((Int64(index), name))
                }
            }
            found.append(info)
        }
        return found
    }

    /// VIDIOC_G_CTRL.
    public func value(of id: UInt32) throws(V4L2Error) -> Int64 {
        var control = v4l2_control(id: id, value: 0)
        try ioctl(cv4l2_VIDIOC_G_CTRL, "VIDIOC_G_CTRL", &control)
        return Int64(control.value)
    }

    /// VIDIOC_S_CTRL, then the value the driver keeps (it may clamp or round).
    public func setValue(_ value: Int64, of id: UInt32) throws(V4L2Error) -> Int64 {
        guard let narrow = Int32(exactly: value) else { throw .ioctl(request: "VIDIOC_S_CTRL", errno: ERANGE) }
        var control = v4l2_control(id: id, value: narrow)
        try ioctl(cv4l2_VIDIOC_S_CTRL, "VIDIOC_S_CTRL", &control)
        return (try? self.value(of: id)) ?? Int64(control.value)
    }

    private static func string<Tuple>(_ tuple: Tuple) -> String {
        withUnsafeBytes(of: tuple) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return String(decoding: bytes, as: UTF8.self)
        }
    }
}
