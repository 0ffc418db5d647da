"""The web pages: the chat page (session auth) and its login and register pages."""

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME, login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.cache import cache_control, never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.debug import sensitive_post_parameters

from accounts import services
from chatproject.errors import ChatError, RateLimited


@login_required
@ensure_csrf_cookie  # the page's API calls send it back as X-CSRFToken
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "chat.html")


@cache_control(public=True, max_age=24 * 3600)
def favicon(request: HttpRequest) -> FileResponse:
    """`/favicon.ico`, which browsers ask for whatever the page links: the SVG icon (the
    chat page links it, and its badged twin, from the static files)."""
    found = finders.find("favicon.svg")
    if not isinstance(found, str):
        raise Http404("no favicon")
    return FileResponse(open(found, "rb"), content_type="image/svg+xml")


class RegisterForm(forms.Form):
    # The rules (accounts.names) are the API's: `services.register_user` applies them.
    username = forms.CharField(max_length=150)
    display_name = forms.CharField(max_length=64, required=False)
    password = forms.CharField(widget=forms.PasswordInput, max_length=128, strip=False)


def _auth_refusal(request: HttpRequest) -> RateLimited | None:
    """Spend one attempt of AUTH_RATE_LIMIT, the budget every login and register form
    shares (the API's, these pages', the admin's) per client address; the refusal once
    it is spent."""
    try:
        services.check_auth_rate(address=request.META.get("REMOTE_ADDR") or "unknown")
    except RateLimited as exc:
        return exc
    return None


def _refusal_form(form_class: Any, posted: Any, refusal: RateLimited, **kwargs: Any) -> Any:
    """The form again, showing the refusal and what was typed (no password).

    Unbound on purpose: a bound login form validates itself when asked for its errors,
    i.e. checks the password, and its answer ("wrong password" or not) would tell a
    right guess from a wrong one beyond the budget."""
    fields = ("username", "display_name")
    form = form_class(initial={f: posted.get(f, "") for f in fields}, **kwargs)
    form.cleaned_data = {}  # what `add_error` expects of a form that was validated
    form.add_error(None, refusal.message)
    return form


def _with_retry_after(response: HttpResponse, refusal: RateLimited) -> HttpResponse:
    response["Retry-After"] = str(refusal.retry_after)
    return response


class LoginView(auth_views.LoginView):
    """`/login/`: refused beyond AUTH_RATE_LIMIT (429 with Retry-After) before any
    password is checked."""

    redirect_authenticated_user = True
    template_name: str = "registration/login.html"  # Django's, as a str (the base allows None)

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        refusal = _auth_refusal(request)
        if refusal is None:
            return super().post(request, *args, **kwargs)
        form = _refusal_form(self.get_form_class(), request.POST, refusal, request=request)
        context = self.get_context_data(form=form)
        return _with_retry_after(self.render_to_response(context, status=429), refusal)


@sensitive_post_parameters()
@never_cache
def admin_login(request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
    """`/admin/login/`: the admin site's own login view (its page, form and checks) under
    the same AUTH_RATE_LIMIT as every other login form. Beyond it the admin's login page
    comes back with the refusal, status 429 and Retry-After, and no password is checked."""
    if request.method == "POST":
        refusal = _auth_refusal(request)
        if refusal is not None:
            form = _refusal_form(AdminAuthenticationForm, request.POST, refusal, request=request)
            # What `AdminSite.login` gives its template.
            context = {
                **admin.site.each_context(request),
                "title": "Log in",
                "subtitle": None,
                "app_path": request.get_full_path(),
                "username": request.user.get_username(),
                "form": form,
                REDIRECT_FIELD_NAME: request.POST.get(REDIRECT_FIELD_NAME)
                or reverse("admin:index", current_app=admin.site.name),
            }
            request.current_app = admin.site.name
            page = TemplateResponse(request, "admin/login.html", context, status=429)
            return _with_retry_after(page, refusal)
    return admin.site.login(request, extra_context)


def register(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("index")
    form = RegisterForm(request.POST or None)
    if request.method == "POST":
        refusal = _auth_refusal(request)
        if refusal is not None:
            form = _refusal_form(RegisterForm, request.POST, refusal)
            page = render(request, "registration/register.html", {"form": form}, status=429)
            return _with_retry_after(page, refusal)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.register_user(**form.cleaned_data)
        except ChatError as exc:
            for field, errors in exc.fields.items():
                for error in errors:
                    form.add_error(field if field in form.fields else None, error)
            if not exc.fields:
                form.add_error(None, exc.message)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("index")
    return render(request, "registration/register.html", {"form": form})
