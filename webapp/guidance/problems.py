"""Each code's problem in a few words, Chinese and English: what the capture page names when the
attempts are used up ("最后一次的问题：光线太暗。"). The person's full guidance is in table.py."""
from __future__ import annotations

_UNAVAILABLE = ("服务暂时不可用", "the service was unavailable")
_BUSY = ("服务暂时繁忙", "the service was busy")
_ACTIONS = ("没有看清动作", "the actions were not seen clearly")
_FACE = ("没有拍到完整的脸", "the whole face was not visible")
_LIVE = ("未能确认是现场录制", "a live recording could not be confirmed")
_MATCH = ("未能确认是本人", "it could not be confirmed that it is you")
_SIDE = ("脸偏到一边了", "the face was off to the side")
_FETCH = ("视频没有传到", "the video did not arrive")

UNKNOWN_PROBLEM = ("未知错误", "an unknown error")

PROBLEMS: dict[int | str, tuple[str, str]] = {
    0: ("", ""),  # passed (or low_score): no problem of its own
    "low_score": _MATCH,
    267501: _BUSY,
    267502: _UNAVAILABLE,
    267503: _UNAVAILABLE,
    267504: ("身份证号码未通过校验", "the ID number was not accepted"),
    267505: ("姓名未通过校验", "the name was not accepted"),
    267506: _UNAVAILABLE,
    267507: _UNAVAILABLE,
    267508: _BUSY,
    267509: ("姓名与身份证号码不一致", "the name and the ID number do not match"),
    267510: _UNAVAILABLE,
    267511: _ACTIONS,
    267512: ("离得太近", "too close"),
    267513: ("离得太远", "too far away"),
    267514: _SIDE,
    267515: _SIDE,
    267516: _ACTIONS,
    267517: ("光线太暗", "too dark"),
    267518: ("光线太强", "too bright"),
    267519: _FACE,
    267520: _ACTIONS,
    267521: _MATCH,
    267522: _BUSY,
    267523: _BUSY,
    267524: _FETCH,
    267525: _FETCH,
    267526: ("公安库中查不到这个号码", "the ID number is not in the registry"),
    267527: ("公安库中没有照片", "the registry has no photo"),
    267528: ("证件照片不够清晰", "the registry photo is not clear enough"),
    267529: ("画面里不止一张脸", "more than one face"),
    267530: _MATCH,
    267531: _FACE,
    267532: ("脸的大小不合适", "the face was too large or too small"),
    267533: ("脸被挡住了", "the face was covered"),
    267534: ("嘴部动作太小", "the lip movement was too small"),
    267535: _BUSY,
    267536: ("视频大小不合适", "the video was the wrong size"),
    267537: ("视频文件无法识别", "the video file could not be read"),
    267538: ("视频清晰度太低", "the video resolution was too low"),
    267539: ("没有听到声音", "no sound"),
    267540: ("声音太小", "the sound was too quiet"),
    267541: ("没有听清数字", "the digits were not understood"),
    267542: ("没有拍清脸", "the face was not clear"),
    267543: _LIVE,
    267544: _LIVE,
    267545: _BUSY,
    267546: _LIVE,
    267547: _LIVE,
    267548: _LIVE,
    267549: ("录制时间太短", "the recording was too short"),
    **dict.fromkeys((10001, 10002, 10003, 10004, 10005, 10007, 10008, 10009, 10012, 10013, 10021),
                    _UNAVAILABLE),
    **dict.fromkeys((10011, 10014, 10020), _BUSY),
    "juhe_timeout": _BUSY,
    "juhe_unreachable": _UNAVAILABLE,
    "juhe_invalid_response": _BUSY,
    "challenge_expired": ("录制已超时", "the recording expired"),
    "upload_too_large": ("视频文件太大", "the video file was too large"),
    "interrupted": ("上传中断", "the upload was interrupted"),
    "service_interrupted": ("网络或服务中断", "the network or the service was interrupted"),
    "video_processing_failed": _BUSY,
}
