"""The rows of the guidance table: every code of Juhe's document, then our own situations, each
with its problem in a few words (what each field means: the package docstring and model.py)."""
from __future__ import annotations

from dataclasses import replace

from .model import Category, Guidance

Problem = tuple[str, str]  # (zh, en)

# Person texts shared by several codes.
_UNAVAILABLE_ZH = "服务暂时不可用，请稍后再试。"
_UNAVAILABLE_EN = "The service is temporarily unavailable. Please try again later."
_BUSY_ZH = "服务暂时繁忙，本次不计入次数。请稍等片刻，再重新录制一次。"
_BUSY_EN = ("The service is busy right now; this try does not count. "
            "Please wait a moment and record again.")
_ACTIONS_ZH = ("没有看清您的动作：请按页面显示的顺序，一个一个清楚地做动作——"
               "张嘴时把嘴张大，闭眼时双眼完全闭上，各保持约一秒，再重新录制。")
_ACTIONS_EN = ("We could not see your actions clearly. Do them in the order shown on the page, "
               "one after the other: open your mouth wide, close both eyes fully, hold each for "
               "about a second, then record again.")
_FACE_ZH = ("没有拍到完整的脸：请正对手机，摘下帽子、口罩和墨镜，让整张脸都在椭圆框内，"
            "再重新录制。")
_FACE_EN = ("We could not see your whole face. Face the phone, take off hat, mask and "
            "sunglasses, keep your whole face inside the oval, and record again.")
_LIVE_ZH = ("未能确认是本人现场录制：请本人正对手机，在光线均匀的地方按页面提示录制，"
            "不要翻拍照片或屏幕。")
_LIVE_EN = ("We could not confirm a live recording. Please record yourself, facing the phone "
            "in even light, following the instructions on the page. Do not film a photo or "
            "a screen.")
_MATCH_ZH = ("未能确认是本人：请在光线均匀的地方，摘下眼镜、帽子和口罩，正对镜头，"
             "再录制一次。")
_MATCH_EN = ("We could not confirm that this is you. In even light, take off glasses, hat and "
             "mask, look straight at the camera, and record once more.")
_SOUND_ZH = ("没有听到您的声音：请在安静的地方，对着手机大声、清楚地读出页面上的数字，"
             "不要遮住麦克风，再重新录制。")
_SOUND_EN = ("We could not hear you. In a quiet place, read the digits on the page aloud, "
             "loudly and clearly, without covering the microphone, and record again.")
_FETCH_ZH = "视频没有传到核验服务，本次不计入次数。请检查网络，再重新录制一次。"
_FETCH_EN = ("Your video did not reach the verification service; this try does not count. "
             "Please check your connection and record again.")
_ID_CONTACT_ZH = "如果核验是由机构为您发起的，请联系该机构。"
_ID_CONTACT_EN = " If an organisation asked you to verify, please contact them."

# Problem words (zh, en) shared by several codes.
_UNAVAILABLE = ("服务暂时不可用", "the service was unavailable")
_BUSY = ("服务暂时繁忙", "the service was busy")
_ACTIONS = ("没有看清动作", "the actions were not seen clearly")
_FACE = ("没有拍到完整的脸", "the whole face was not visible")
_LIVE = ("未能确认是现场录制", "a live recording could not be confirmed")
_MATCH = ("未能确认是本人", "it could not be confirmed that it is you")
_SIDE = ("脸偏到一边了", "the face was off to the side")
_FETCH = ("视频没有传到", "the video did not arrive")


def _g(code: int | str, meaning: str, category: Category, problem: Problem, *, retry: bool,
       counts: bool, zh: str, en: str, op: str, charged: bool = False,
       final: bool = False) -> Guidance:
    problem_zh, problem_en = problem
    return Guidance(code, meaning, category, retry, charged, counts, final, zh, en, op,
                    problem_zh, problem_en)


def _capture(code: int, meaning: str, problem: Problem, zh: str, en: str, op: str) -> Guidance:
    """A recording problem Juhe judged: counts, retry helps."""
    return _g(code, meaning, Category.CAPTURE, problem, retry=True, counts=True, zh=zh, en=en,
              op=op)


def _juhe_fault(code: int, meaning: str, problem: Problem, op: str) -> Guidance:
    """Juhe's own service/network failure: does not count, retry helps."""
    return _g(code, meaning, Category.SERVICE, problem, retry=True, counts=False, zh=_BUSY_ZH,
              en=_BUSY_EN, op=op)


def _our_request(code: int, meaning: str, problem: Problem, op: str) -> Guidance:
    """Our request was malformed: does not count; only a fix on our side helps."""
    return _g(code, meaning, Category.CONFIGURATION, problem, retry=False, counts=False,
              zh=_UNAVAILABLE_ZH, en=_UNAVAILABLE_EN,
              op=op + " This is a bug or misconfiguration in this service.")


def _system(code: int, meaning: str, problem: Problem, op: str, *, retry: bool = False,
            category: Category = Category.CONFIGURATION) -> Guidance:
    """A Juhe system-level code (100xx): never counts, never charged."""
    return _g(code, meaning, category, problem, retry=retry, counts=False, zh=_UNAVAILABLE_ZH,
              en=_UNAVAILABLE_EN, op=op)


def _final_identity(code: int, meaning: str, problem: Problem, zh: str, en: str, op: str,
                    charged: bool = False) -> Guidance:
    """Juhe refused the identity itself: counts and ends the session."""
    return _g(code, meaning, Category.IDENTITY, problem, retry=False, counts=True, final=True,
              charged=charged, zh=zh + _ID_CONTACT_ZH, en=en + _ID_CONTACT_EN, op=op)


ROWS: list[Guidance] = [
    _g(0, "成功", Category.IDENTITY, ("", ""), retry=False, counts=True, charged=True,
       zh="核验通过。", en="Verification passed.",
       op="Juhe judged the video live and compared it with the registry photo; the score "
          "decides pass (>= PASS_SCORE) or low_score. Charged."),
    _g("low_score", "相似度低于通过标准", Category.IDENTITY, _MATCH, retry=True, counts=True, charged=True,
       zh=_MATCH_ZH, en=_MATCH_EN,
       op="error_code 0 but the similarity is below PASS_SCORE: the face did not match the "
          "registry photo well enough (or it is not the same person). Charged; counts."),

    # --- Juhe service codes 267501-267549 -------------------------------------------------
    _juhe_fault(267501, "网络错误", _BUSY, "Juhe reported an internal network error. Not charged."),
    _our_request(267502, "videoBase64和videoUrl不可同时为空", _UNAVAILABLE,
                 "Juhe saw no video: the body was empty or not form-urlencoded."),
    _our_request(267503, "livenessType错误", _UNAVAILABLE, "livenessType must be 0, 1 or 2."),
    _final_identity(267504, "身份证格式错误", ("身份证号码未通过校验", "the ID number was not accepted"),
                    "身份证号码未通过校验，无法核验。请核对号码后重新发起核验。",
                    "The ID number was not accepted. Please check it and start a new "
                    "verification.",
                    "Juhe rejected the ID number format although it passed our GB 11643 check; "
                    "verify the number with the person."),
    _final_identity(267505, "姓名格式错误", ("姓名未通过校验", "the name was not accepted"),
                    "姓名未通过校验，无法核验。请核对姓名（与身份证上一致）后重新发起核验。",
                    "The name was not accepted. Please check that it matches the ID card "
                    "exactly and start a new verification.",
                    "Juhe rejected the name format (it expects the Chinese name exactly as on "
                    "the ID card, middle dot allowed)."),
    _our_request(267506, "请输入4位数字的数字验证码", _UNAVAILABLE,
                 "Number mode needs validateData of exactly 4 digits."),
    _our_request(267507, "请传入正确的动作顺序参数", _UNAVAILABLE,
                 "Action mode needs validateData \"1,2\" or \"2,1\"."),
    _juhe_fault(267508, "其他错误", _BUSY, "Juhe reported an unspecified error. Not charged."),
    _final_identity(267509, "姓名和身份证号不一致，请核实后重试。(收费)",
                    ("姓名与身份证号码不一致", "the name and the ID number do not match"),
                    "姓名与身份证号码不一致，无法完成核验。请核对身份信息。",
                    "The name and the ID number do not belong together, so we cannot verify "
                    "you. Please check your details.",
                    "Name and ID number do not match in the registry. Charged; the session "
                    "fails, a new session with corrected data is needed.", charged=True),
    _our_request(267510, "bestFrameNum取值在2-10范围内", _UNAVAILABLE, "bestFrameNum must be 2..10."),
    _capture(267511, "未检测到闭眼动作", _ACTIONS, _ACTIONS_ZH, _ACTIONS_EN,
             "Action mode: Juhe saw no eye closing."),
    _capture(267512, "脸离屏幕太近", ("离得太近", "too close"),
             "离得太近：请把手机拿远一点，让整张脸完整地在椭圆框内，再重新录制。",
             "Too close: hold the phone a little further away so your whole face fits "
             "inside the oval, then record again.", "Face too close to the camera."),
    _capture(267513, "脸离屏幕太远", ("离得太远", "too far away"),
             "离得太远：请把手机拿近一点，让脸占满椭圆框的大部分，再重新录制。",
             "Too far away: hold the phone a little closer so your face fills most of the "
             "oval, then record again.", "Face too far from the camera."),
    _capture(267514, "脸离屏幕太左", _SIDE,
             "脸偏到一边了：请把脸移到画面正中间，保持在椭圆框内，再重新录制。",
             "Your face is off to the side: move it to the middle of the picture, inside the "
             "oval, and record again.", "Face too far left in the frame."),
    _capture(267515, "脸离屏幕太右", _SIDE,
             "脸偏到一边了：请把脸移到画面正中间，保持在椭圆框内，再重新录制。",
             "Your face is off to the side: move it to the middle of the picture, inside the "
             "oval, and record again.", "Face too far right in the frame."),
    _capture(267516, "未检测到第一个动作", _ACTIONS, _ACTIONS_ZH, _ACTIONS_EN,
             "Action mode: Juhe did not see the first action."),
    _capture(267517, "光线太暗", ("光线太暗", "too dark"),
             "光线太暗：请到明亮的地方，让光照在脸上，再重新录制。",
             "Too dark: move somewhere bright with the light falling on your face, then "
             "record again.", "Video too dark."),
    _capture(267518, "光线太强", ("光线太强", "too bright"),
             "光线太强：请避开窗边、阳光直射和头顶强灯，让脸上的光线均匀柔和，再重新录制。",
             "Too bright: avoid windows, direct sunlight and strong overhead lamps so the "
             "light on your face is soft and even, then record again.", "Video overexposed."),
    _capture(267519, "未能检测到完整人脸", _FACE, _FACE_ZH, _FACE_EN, "No complete face detected."),
    _capture(267520, "未检测到张嘴动作", _ACTIONS, _ACTIONS_ZH, _ACTIONS_EN,
             "Action mode: Juhe saw no mouth opening."),
    _capture(267521, "比对失败", _MATCH, _MATCH_ZH, _MATCH_EN,
             "Juhe could not compare the face with the registry photo."),
    _juhe_fault(267522, "调用比对引擎接口出错", _BUSY,
                "Juhe's comparison engine failed. Not charged."),
    _juhe_fault(267523, "解密失败", _BUSY,
                "Juhe could not decrypt/decode the request. Not charged; does not count "
                "(our decision: Juhe judged nothing). If it repeats, check the video encoding."),
    _g(267524, "文件下载失败", Category.SERVICE, _FETCH, retry=True, counts=False,
       zh=_FETCH_ZH, en=_FETCH_EN,
       op="Juhe: download of videoUrl failed (we never send videoUrl to Juhe). This service "
          "answers it for the operator API's video_url when the download failed: no connection, "
          "or an HTTP error from your file server. Check that the URL is reachable from the "
          "service and not expired. Not charged; no attempt is used."),
    _g(267525, "文件下载超时", Category.SERVICE, _FETCH, retry=True, counts=False,
       zh=_FETCH_ZH, en=_FETCH_EN,
       op="Juhe: download of videoUrl timed out. This service answers it for the operator "
          "API's video_url when the download took longer than Juhe's own limit (4 s, redirects "
          "included): serve the file faster or upload it as multipart. Not charged; no attempt "
          "is used."),
    _final_identity(267526, "库中无此号，请到户籍所在地进行核实",
                    ("公安库中查不到这个号码", "the ID number is not in the registry"),
                    "公安库中查不到这个身份证号码，无法在线核验。请到户籍所在地派出所核实。",
                    "This ID number is not in the national registry, so we cannot verify "
                    "you online. Please check with the police station where your household is "
                    "registered.",
                    "ID number not found in the registry. Session fails."),
    _final_identity(267527, "库中无此号照片，请到户籍所在地进行核实。", ("公安库中没有照片", "the registry has no photo"),
                    "公安库中没有这个身份证号码的照片，无法在线核验。请到户籍所在地派出所核实。",
                    "The registry has no photo for this ID number, so we cannot verify you "
                    "online. Please check with the police station where your household is "
                    "registered.",
                    "No registry photo for this ID number. Session fails."),
    _final_identity(267528, "证件图片分辨率太低，请重新上传",
                    ("证件照片不够清晰", "the registry photo is not clear enough"),
                    "公安库中的证件照片不够清晰，无法在线比对。",
                    "The registry photo for this ID is not clear enough to compare with, so "
                    "we cannot verify you online.",
                    "The registry photo's resolution is too low for comparison; no video can "
                    "fix this. Session fails; use another verification channel."),
    _capture(267529, "检测到多张人脸", ("画面里不止一张脸", "more than one face"),
             "画面里不止一张脸：请确保只有您本人在画面中，身后不要有其他人、照片或海报。",
             "More than one face is visible. Make sure only you are in the picture, with no "
             "other people, photos or posters behind you.", "Several faces detected."),
    _g(267530, "实人比对没通过", Category.IDENTITY, _MATCH, retry=True, counts=True,
       zh=_MATCH_ZH, en=_MATCH_EN, op="The face did not match the registry photo."),
    _capture(267531, "未能检测到完整人脸", _FACE, _FACE_ZH, _FACE_EN, "No complete face detected."),
    _capture(267532, "传入图片过大或过小", ("脸的大小不合适", "the face was too large or too small"),
             "画面中的脸大小不合适：请正对手机，让整张脸刚好在椭圆框内，再重新录制。",
             "Your face is too large or too small in the picture. Face the phone so your "
             "whole face just fits inside the oval, and record again.",
             "Juhe found the extracted face image too large or too small."),
    _capture(267533, "脸部未完整露出", ("脸被挡住了", "the face was covered"),
             "脸被挡住了：请摘下口罩、帽子或墨镜，把头发拨开，露出整张脸，再重新录制。",
             "Part of your face is covered. Take off mask, hat or sunglasses, move your hair "
             "aside so your whole face shows, and record again.", "Face partly covered."),
    _capture(267534, "嘴唇动作幅度过小", ("嘴部动作太小", "the lip movement was too small"),
             "嘴部动作太小：请按页面显示的顺序清楚地做动作，读数字时一个字一个字大声读出来，"
             "张嘴时把嘴张大，再重新录制。",
             "Your lip movement was too small. Do what the page shows clearly and in order: "
             "read each digit aloud one by one, or open your mouth wide, then record again.",
             "Lip movement too small (number or action mode)."),
    _juhe_fault(267535, "视频拉取失败，请重试", _BUSY,
                "Juhe failed to fetch the video internally. Not charged. This service also "
                "answers it for the operator API's video_url when the connection broke off "
                "during the download: send it again."),
    replace(_capture(267536, "视频为空，或大小不合适，请控制录制时长在6s左右",
                     ("视频大小不合适", "the video was the wrong size"),
                     "视频大小不合适：请重新录制一段约6秒的视频。",
                     "The video is empty or the wrong size. Please record a video of about 6 "
                     "seconds.", "Base64 video empty or over 8 MB."), recording_broken=True),
    replace(_capture(267537, "视频格式有误", ("视频文件无法识别", "the video file could not be read"),
                     "视频文件无法识别：请直接在本页面重新录制；如果上传文件，请选择手机相机拍摄的视频。",
                     "The video file could not be read. Please record directly on this page; if "
                     "you upload a file, choose a video taken with your phone camera.",
                     "Juhe could not parse the video (it expects H.264 in mp4/avi/flv)."),
            recording_broken=True),
    _capture(267538, "视频像素太低", ("视频清晰度太低", "the video resolution was too low"),
             "视频清晰度太低：请用手机前置摄像头录制，擦干净镜头，再重新录制。",
             "The video resolution is too low. Use your phone's front camera, wipe the lens, "
             "and record again.", "Video below 270p."),
    _capture(267539, "未检测到声音", ("没有听到声音", "no sound"), _SOUND_ZH, _SOUND_EN,
             "Number mode: no audio detected (check that the audio track survives "
             "normalisation)."),
    _capture(267540, "视频声音太小", ("声音太小", "the sound was too quiet"), _SOUND_ZH, _SOUND_EN,
             "Number mode: audio too quiet."),
    _capture(267541, "声音识别失败", ("没有听清数字", "the digits were not understood"),
             "没有听清您读的数字：请在安静的地方，按顺序一个一个清楚地读出页面上的数字，"
             "再重新录制。",
             "We could not make out the digits you read. In a quiet place, read the digits "
             "on the page one by one, clearly and in order, and record again.",
             "Number mode: speech recognition did not match the digits."),
    _capture(267542, "人脸检测失败，无法提取比对照", ("没有拍清脸", "the face was not clear"),
             "没有拍清您的脸：请正对手机、保持不动，在光线均匀的地方再录制一次。",
             "We could not get a clear picture of your face. Face the phone, hold still, and "
             "record again in even light.", "No usable face frame for comparison."),
    _capture(267543, "活体检测没通过", _LIVE, _LIVE_ZH, _LIVE_EN, "Liveness check failed."),
    _capture(267544, "疑似非真人录制", _LIVE, _LIVE_ZH, _LIVE_EN,
             "Suspected non-live recording (photo, screen, mask)."),
    _juhe_fault(267545, "调用活体引擎接口出错", _BUSY,
                "Juhe's liveness engine failed. Not charged."),
    _capture(267546, "视频实人检测没通过", _LIVE, _LIVE_ZH, _LIVE_EN, "Real-person check failed."),
    _capture(267547, "实人检测失败", _LIVE, _LIVE_ZH, _LIVE_EN, "Real-person check failed."),
    _capture(267548, "实人检测未达到通过标准", _LIVE, _LIVE_ZH, _LIVE_EN,
             "Real-person check below Juhe's threshold."),
    _capture(267549, "视频录制时间过短，请录制2秒以上的视频", ("录制时间太短", "the recording was too short"),
             "录制时间太短：请录制至少2秒，最好约6秒，录制时保持脸在椭圆框内。",
             "The recording was too short. Record for at least 2 seconds, ideally about 6, "
             "keeping your face inside the oval.", "Video shorter than 2 s."),

    # --- Juhe system codes (old resultcode in brackets) ------------------------------------
    _system(10001, "错误的请求KEY", _UNAVAILABLE,
            "JUHE_KEY is wrong (101): copy it again from Juhe 个人中心 -> 我的数据."),
    _system(10002, "该KEY无请求权限", _UNAVAILABLE,
            "The key has no permission for antiFaceId (102): apply for the API in Juhe's "
            "console."),
    _system(10003, "KEY过期", _UNAVAILABLE, "The key has expired (103): renew it in Juhe's console."),
    _system(10004, "错误的OPENID", _UNAVAILABLE,
            "Wrong OPENID (104): check the Juhe account settings."),
    _system(10005, "应用未审核超时，请提交认证", _UNAVAILABLE,
            "The Juhe application was not reviewed in time (105): submit the account "
            "verification in Juhe's console."),
    _system(10007, "未知的请求源", _UNAVAILABLE,
            "Unknown request source (107): check the server's IP/whitelist settings at Juhe."),
    _system(10008, "被禁止的IP", _UNAVAILABLE,
            "This server's IP is banned (108): add it to the key's IP whitelist or contact "
            "Juhe."),
    _system(10009, "被禁止的KEY", _UNAVAILABLE, "The key is banned (109): contact Juhe."),
    _system(10011, "当前IP请求超过限制", _BUSY,
            "Rate limit for this IP exceeded (111): slow down; retrying later helps.",
            retry=True, category=Category.SERVICE),
    _system(10012, "请求超过次数限制", _UNAVAILABLE,
            "Request quota exhausted (112): top up or raise the quota in Juhe's console."),
    _system(10013, "测试KEY超过请求限制", _UNAVAILABLE,
            "The test key's request limit is used up (113): switch to a paid key."),
    _system(10014, "系统内部异常(调用充值类业务时，请务必联系客服或通过订单查询接口检测订单，避免造成损失)", _BUSY,
            "Juhe internal error (114): transient; if it persists contact Juhe. Check "
            "Juhe's order list if billing looks off.", retry=True, category=Category.SERVICE),
    _system(10020, "接口维护", _BUSY, "The API is under maintenance (120): retry later.",
            retry=True, category=Category.SERVICE),
    _system(10021, "接口停用", _UNAVAILABLE, "The API has been discontinued (121): contact Juhe."),

    # --- our own situations ------------------------------------------------------------------
    _g("juhe_timeout", "聚合接口未在规定时间内应答", Category.SERVICE, _BUSY,
       retry=True, counts=False, zh=_BUSY_ZH, en=_BUSY_EN,
       op="No answer within the read timeout. The request was sent, so Juhe may have judged "
          "and charged it; compare with Juhe's order list. Not counted against the person."),
    _g("juhe_unreachable", "无法连接聚合接口", Category.SERVICE, _UNAVAILABLE,
       retry=True, counts=False, zh=_UNAVAILABLE_ZH, en=_UNAVAILABLE_EN,
       op="No connection to JUHE_API_URL after retries (DNS, firewall, outage), or the "
          "connection dropped. Not charged when no connection was made."),
    _g("juhe_invalid_response", "聚合接口应答无法识别", Category.SERVICE, _BUSY,
       retry=True, counts=False, zh=_BUSY_ZH, en=_BUSY_EN,
       op="HTTP error, non-JSON answer or error_code 0 without a score (possibly charged: "
          "check the orderid and Juhe's order list). Check JUHE_API_URL and any proxy."),
    _g("challenge_expired", "挑战已过期或已使用", Category.CAPTURE, ("录制已超时", "the recording expired"),
       retry=True, counts=False, zh="本次录制已超时。请点击重新录制，按新的提示再录一次。",
       en="This recording has expired. Please tap to record again and follow the new "
          "instructions.",
       op="The challenge was older than its lifetime or already used; nothing was sent to Juhe."),
    _g("upload_too_large", "上传文件过大", Category.CAPTURE, ("视频文件太大", "the video file was too large"),
       retry=True, counts=False, zh="视频文件太大：请直接在本页面录制约6秒的视频；如果上传文件，请选择更短的视频。",
       en="The video file is too large. Please record about 6 seconds directly on this "
          "page, or choose a shorter video.",
       op="The upload exceeded the size limit; nothing was sent to Juhe."),
    _g("interrupted", "上传中断", Category.CAPTURE, ("上传中断", "the upload was interrupted"),
       retry=True, counts=False, zh="上传中断了：请检查网络连接，然后重新录制。",
       en="The upload was interrupted. Please check your connection and record again.",
       op="The upload did not arrive complete (client disconnected); nothing was sent to Juhe."),
    _g("service_interrupted", "处理中断", Category.SERVICE,
       ("网络或服务中断", "the network or the service was interrupted"), retry=True, counts=False,
       zh="网络或服务中断，请重新录制。本次不计入次数。",
       en="The network or the service was interrupted. Please record again; this try does not "
          "count.",
       op="The process handling this attempt stopped (a worker was killed or lost the "
          "database) and its lease lapsed. If it had already sent the video, Juhe may have "
          "judged and charged it (charge unknown); a late answer is recorded on this attempt. "
          "Not counted against the person."),
    _g("video_processing_failed", "视频处理失败", Category.CONFIGURATION, _BUSY,
       retry=True, counts=False, zh=_BUSY_ZH, en=_BUSY_EN,
       op="ffmpeg/ffprobe could not run or ran out of time (FFMPEG_TIMEOUT) on our side; "
          "nothing was sent to Juhe and no attempt was used. Check /readyz and the server load."),
]
